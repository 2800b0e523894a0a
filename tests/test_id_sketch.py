"""Id sketches (paydash/warehouse/id_sketch.py): the vectorised and per-row sketches agree, and
an id containing a text, in any ASCII case, always has every bit of the text's mask."""

from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paydash.sources.demo import DemoSpec, generate_payments
from paydash.sources.stripe.transform import mart_row
from paydash.warehouse.id_sketch import BITS, SKETCH_COLUMNS, id_sketches, search_mask, sketch, sketch_array

ID_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=0x24F, blacklist_categories=("Cs",)), max_size=40)


@pytest.mark.parametrize("text, bits", [("", 0), ("ab", 0), ("abc", 1), ("abcd", 2)])
def test_one_bit_per_trigram(text, bits) -> None:
    assert bin(sketch(text)).count("1") == bits
    assert 0 <= sketch(text) < 2**BITS


def test_ascii_case_does_not_matter_and_none_stays_none() -> None:
    assert sketch("ch_3PqRsT") == sketch("CH_3pqrst") == search_mask("Ch_3PQRST")
    assert sketch(None) is None


def test_a_text_outside_ascii_is_not_sketched() -> None:
    # ILIKE may fold cases that bytes do not: such a text compares every row
    assert search_mask("ÉCOLE1") == 0 and search_mask("ab") == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), ID_TEXT), max_size=60), st.integers(1, 7))
def test_property_the_vectorised_sketch_is_the_per_row_one(ids, chunk_rows) -> None:
    got = sketch_array(pa.array(ids, pa.string()), chunk_rows=chunk_rows).to_pylist()
    assert got == [sketch(i) for i in ids]


def test_vectorised_over_slices_chunks_and_dictionaries() -> None:
    ids = pa.array(["cus_AbCdEf", "x", None, "prof_12345", "cus_AbCdEf"] * 3)
    want = [sketch(i) for i in ids.to_pylist()]
    assert sketch_array(ids.slice(2, 9)).to_pylist() == want[2:11]
    assert sketch_array(pa.chunked_array([ids.slice(0, 4), ids.slice(4)])).to_pylist() == want
    assert sketch_array(ids.dictionary_encode()).to_pylist() == want


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=3, max_size=40), st.data())
def test_property_an_id_holds_the_mask_of_any_part_of_it(id_, data) -> None:
    start = data.draw(st.integers(0, len(id_) - 3))
    stop = data.draw(st.integers(start + 3, len(id_)))
    part = id_[start:stop].swapcase() if data.draw(st.booleans()) else id_[start:stop].upper()
    mask = search_mask(part)
    assert mask and sketch(id_) & mask == mask


def test_demo_rows_carry_the_sketches_of_their_ids() -> None:
    table = generate_payments(DemoSpec(payments=3_000, days=10, seed=5))
    for id_column, sketch_column in SKETCH_COLUMNS.items():
        assert table[sketch_column].to_pylist() == [sketch(i) for i in table[id_column].to_pylist()], sketch_column


def test_stripe_charge_rows_carry_the_sketches_of_their_ids() -> None:
    charge = {"id": "ch_3SkEtch", "object": "charge", "created": 1_700_000_000, "status": "succeeded", "amount": 1250,
              "currency": "usd", "payment_intent": "pi_3SkEtch", "customer": "cus_SkEtch", "metadata": {}}
    row = mart_row(charge)
    assert {k: row[k] for k in SKETCH_COLUMNS.values()} == id_sketches(row)
    assert row["charge_id_sketch"] == sketch("ch_3SkEtch") and row["profile_id_sketch"] is None
