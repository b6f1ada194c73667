"""The suite's test modules, run in file order (01 discovery … 07 conversion); each test names its rule."""
