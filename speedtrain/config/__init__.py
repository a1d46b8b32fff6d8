"""The one validated configuration (TrainConfig): fields grouped by role, their specs and checks."""
