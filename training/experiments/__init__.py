"""The seed's ablation studies on the MNIST CNN, as a reproducible runner: `python -m training.experiments --help`."""
