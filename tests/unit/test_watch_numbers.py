"""The InstanceNumbers a hot folder hands out in a series it fills.

A stand-in server here, because the point is what happens between the server's answers:
files in flight that the server does not know yet, and another writer between rounds.
"""

from __future__ import annotations

import concurrent.futures
from typing import cast

from pdf2dcm.client import Instance, LookupMatch, OrthancClient
from pdf2dcm.watch import SeriesNumbers


class Archive:
    """Series UID -> the InstanceNumbers stored; counts the questions asked."""

    def __init__(self) -> None:
        self.stored: dict[str, list[int]] = {}
        self.asked = 0

    def lookup(self, uid: str) -> list[LookupMatch]:
        self.asked += 1
        return [LookupMatch("Series", f"id-{uid}")] if uid in self.stored else []

    def series_instances(self, series_id: str) -> list[Instance]:
        uid = series_id.removeprefix("id-")
        return [Instance(f"i{n}", series_id, {"InstanceNumber": str(n)}) for n in self.stored[uid]]


def numbers(archive: Archive) -> SeriesNumbers:
    return SeriesNumbers(cast("OrthancClient", archive))


def test_files_in_flight_get_distinct_numbers_after_the_server_s_highest() -> None:
    archive = Archive()
    archive.stored["1.2.3"] = [1, 7]
    counter = numbers(archive)
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        taken = list(pool.map(lambda _n: counter.take("1.2.3", 2), range(20)))
    assert sorted(taken) == list(range(8, 28))
    assert archive.asked == 1


def test_the_reference_s_next_number_is_a_floor_and_a_new_series_starts_at_one() -> None:
    archive = Archive()
    counter = numbers(archive)
    assert [counter.take("9.9", 5), counter.take("9.9", 5)] == [5, 6]
    assert [counter.take("8.8", 1), counter.take("8.8", 1)] == [1, 2]


def test_a_refresh_asks_the_server_again_and_never_goes_back() -> None:
    archive = Archive()
    archive.stored["1.2.3"] = [1]
    counter = numbers(archive)
    assert counter.take("1.2.3", 1) == 2
    archive.stored["1.2.3"] = [1, 2, 3, 10]  # another writer, between rounds
    assert counter.take("1.2.3", 1) == 3
    counter.refresh()
    assert counter.take("1.2.3", 1) == 11
    archive.stored["1.2.3"] = [1]  # deleted on the server: numbers still only go up
    counter.refresh()
    assert counter.take("1.2.3", 1) == 12
    assert archive.asked == 3
