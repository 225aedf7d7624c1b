"""The runtime's admission control (`DIGITS_MAX_QUEUED_IMAGES`) counts images, not
requests, always takes a request when idle, and forgets a request however it ends."""

from __future__ import annotations

import pytest

from service.errors import OverloadedError
from service.runtime.admission import Admission


def test_images_past_the_limit_are_refused_and_counted() -> None:
    refusals: list[int] = []
    admission = Admission(100, on_refused=lambda: refusals.append(1))
    with admission.admit(60):
        with admission.admit(40):
            assert admission.in_flight == 100
            assert admission.saturated
        assert not admission.saturated
        with pytest.raises(OverloadedError) as refused, admission.admit(41):
            pass
        assert refused.value.code == "overloaded"
        assert admission.in_flight == 60  # the refused request was never counted
    assert admission.in_flight == 0
    assert refusals == [1]


def test_an_idle_process_takes_any_request() -> None:
    admission = Admission(10)
    with admission.admit(256):
        assert admission.saturated
        with pytest.raises(OverloadedError), admission.admit(1):
            pass


def test_a_failed_or_cancelled_request_is_no_longer_counted() -> None:
    admission = Admission(10)
    with pytest.raises(KeyboardInterrupt), admission.admit(5):
        raise KeyboardInterrupt
    assert admission.in_flight == 0


def test_zero_means_no_limit() -> None:
    admission = Admission(0)
    with admission.admit(10**9), admission.admit(10**9):
        assert not admission.saturated
