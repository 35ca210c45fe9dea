"""embodied: what joins sim, video_models and policies (store, training, evaluation, SAIL, CLIs)."""

import os

# OpenMP threads sleep instead of spinning while they wait. Set before torch loads OpenMP: on a
# machine shared with other processes (2 cores, rollout workers beside training), spinning threads
# made a video-model training step 5-10x slower (measured 0.86 s vs 2.9-4.2 s).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
