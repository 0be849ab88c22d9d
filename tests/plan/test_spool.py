"""The fast shard line encoding is exactly item_to_json() as compact JSON."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from ingest.items import Item
from ingest.state.records import item_from_json, item_line, item_to_json

text = st.text(max_size=20)
opt = st.one_of(st.none(), text)


@given(
    st.builds(
        Item,
        key=text,
        size=st.integers(0, 2**50),
        etag=opt,
        last_modified=opt,
        bucket=opt,
        version_id=opt,
        sha256=opt,
        content_type=opt,
        title=opt,
        tags=st.lists(text, max_size=3).map(tuple),
    )
)
def test_item_line_is_the_compact_json_of_item_to_json(item: Item) -> None:
    line = item_line(item)
    assert line == json.dumps(item_to_json(item), separators=(",", ":"), ensure_ascii=False)
    assert item_from_json(json.loads(line)) == item
