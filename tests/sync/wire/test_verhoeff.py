from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sync.wire import verhoeff

numbers = st.text(alphabet="0123456789", min_size=1, max_size=15)


def test_known_values() -> None:
    assert verhoeff.check_digit("236") == "3"
    assert verhoeff.is_valid("2363")
    assert not verhoeff.is_valid("2364")
    assert verhoeff.token_for_serial(1) == "0000000001" + verhoeff.check_digit("0000000001")


@given(numbers, st.data())
def test_every_single_digit_error_is_caught(body: str, data: st.DataObject) -> None:
    full = body + verhoeff.check_digit(body)
    assert verhoeff.is_valid(full)
    i = data.draw(st.integers(0, len(full) - 1))
    new = data.draw(st.sampled_from([d for d in "0123456789" if d != full[i]]))
    assert not verhoeff.is_valid(full[:i] + new + full[i + 1 :])


@given(numbers.filter(lambda s: len(s) >= 1), st.data())
def test_every_adjacent_transposition_is_caught(body: str, data: st.DataObject) -> None:
    full = body + verhoeff.check_digit(body)
    i = data.draw(st.integers(0, len(full) - 2))
    if full[i] == full[i + 1]:
        return
    swapped = full[:i] + full[i + 1] + full[i] + full[i + 2 :]
    assert not verhoeff.is_valid(swapped)


@given(st.integers(1, 10**10 - 1))
def test_tokens_are_11_digits_and_round_trip(serial: int) -> None:
    tok = verhoeff.token_for_serial(serial)
    assert len(tok) == 11 and verhoeff.serial_of_token(tok) == serial
