"""embodied: what joins sim, video_models and policies (store, training, evaluation, SAIL, CLIs)."""
