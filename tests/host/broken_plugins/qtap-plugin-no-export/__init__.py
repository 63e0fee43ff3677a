"""Imports fine but exports no `plugin` object."""

from providers.contract import ProviderPlugin


class Forgotten(ProviderPlugin):
    pass
