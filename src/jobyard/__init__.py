"""jobyard: self-hosted job orchestration."""

__version__ = "0.1.0"
