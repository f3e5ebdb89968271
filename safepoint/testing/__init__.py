"""Test helpers for safepoint and for third-party store backends. Needs pytest and hypothesis installed.

A backend is done when a subclass of `StoreTests` passes::

    from safepoint.testing import StoreTests

    class TestMyStore(StoreTests):
        @pytest.fixture
        def store(self, tmp_path):
            with MyStore(tmp_path) as store:
                yield store

        @pytest.fixture
        def store_factory(self, store):
            return lambda: MyStore(store.root)
"""

import pytest

# The suite lives outside any test directory: ask pytest to rewrite its asserts for readable failures.
pytest.register_assert_rewrite("safepoint.testing.store_suite")

from .store_suite import StoreTests  # noqa: E402

__all__ = ["StoreTests"]
