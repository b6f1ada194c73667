"""A learner's personal learning archive (个人学习档案), grouped as the Shanghai platform shows it."""
