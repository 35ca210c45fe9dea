"""The command-line tools, one module each: thin Hydra (or argparse) entry points over the library
functions that take a config. Console scripts (pyproject.toml) and ``python -m embodied.cli.<name>``:

    embodied-collect          collect.py         embodied-sail          sail.py
    embodied-train-video      train_video.py     embodied-sail-summary  sail_summary.py
    embodied-train-policy     train_policy.py    embodied-eval          evaluate.py
    embodied-train-grader     train_grader.py    embodied-deploy        deploy.py
    embodied-grade            grade.py           embodied-export        lerobot_export.py
                                                 embodied-import        lerobot_import.py
"""
