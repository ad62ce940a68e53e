"""ftui: a terminal experiment manager for fine-tuning studies. Never imports torch."""

__version__ = "0.1.0"
