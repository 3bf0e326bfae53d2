"""iii HTTP API module (``http`` trigger type) and HTTP-invoked external functions."""

from iii_rest.http_functions import HttpFunctionsModule
from iii_rest.module import RestApiModule

__all__ = ["HttpFunctionsModule", "RestApiModule"]
