"""`speedtrain doctor`: checks of the assumptions the harness makes about this machine and its GPUs."""
