"""placeholder"""
from iii_core import Module


class HttpFunctionsModule(Module):
    name = "HttpFunctionsModule"
