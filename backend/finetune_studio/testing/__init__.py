"""Real parts for the project's tests and benchmarks (and for anyone testing code that reports to Fine-Tune
Studio): the real server started as users start it, tiny models built from a config, small data files.

    from finetune_studio.testing import start_server
    from finetune_studio.testing.tiny_models import build_tiny_bert, write_classification_data
"""

from .server import RunningServer, start_server, studio_server

__all__ = ["RunningServer", "start_server", "studio_server"]
