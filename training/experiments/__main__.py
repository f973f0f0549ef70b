from training.experiments.runner import main

main()
