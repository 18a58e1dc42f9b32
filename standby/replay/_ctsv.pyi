from collections.abc import Iterable, Sequence
from typing import Any

def tsv(rows: Iterable[Sequence[Any]]) -> bytes: ...
