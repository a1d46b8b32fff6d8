"""What a run measured and how it is stored: run results, case records, saved runs, baselines. Torch-free."""
