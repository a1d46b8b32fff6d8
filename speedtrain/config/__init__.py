"""The one validated configuration (TrainConfig): fields grouped by role, their specs and checks.

``fields`` says what a field is (default, help with unit, role group), ``validate`` holds every
check grouped by role, ``trainconfig`` the dataclass itself.
"""

from speedtrain.config.trainconfig import TrainConfig

__all__ = ["TrainConfig"]
