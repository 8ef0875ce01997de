"""Video from images on Moving MNIST: a clip from one still (predict) and the frames between a first and a
last frame (inbetween). train.py trains, baselines.py and evaluate.py measure, apply.py turns a user's
PNGs into clips, cli.py adds the commands."""
