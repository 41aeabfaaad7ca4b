"""The numbers the planning stage reserves in the series and studies it fills.

A stand-in archive view here, because the point is what happens between the archive's
answers: documents in flight that the archive does not know yet, and another writer between
rounds.
"""

from __future__ import annotations

import concurrent.futures

from pdf2dcm.plan import NoArchive, Numbers


class Archive(NoArchive):
    """Series UID -> the InstanceNumbers stored; counts the questions asked."""

    def __init__(self) -> None:
        self.stored: dict[str, list[int]] = {}
        self.series: dict[str, list[int]] = {}
        self.asked = 0

    def next_instance_number(self, series_uid: str) -> int:
        self.asked += 1
        return max(self.stored.get(series_uid, [0])) + 1

    def next_series_number(self, study_uid: str) -> int:
        self.asked += 1
        return max(self.series.get(study_uid, [0])) + 1


class Counter:
    """The instance numbers of :class:`Numbers`, as the tests below take them."""

    def __init__(self, archive: Archive) -> None:
        self.numbers = Numbers(archive)

    def take(self, series_uid: str, first: int) -> int:
        return self.numbers.instance_number(series_uid, first)

    def refresh(self) -> None:
        self.numbers.refresh()


def numbers(archive: Archive) -> Counter:
    return Counter(archive)


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


def test_series_numbers_in_a_study_are_reserved_once_per_series() -> None:
    archive = Archive()
    archive.series["1.2"] = [1, 2]
    book = Numbers(archive)
    # Eight files of one study, each its own series: eight distinct numbers after the
    # archive's, as a hot folder's files in flight together must get.
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        taken = list(pool.map(lambda _n: book.series_number("1.2", 1), range(8)))
    assert sorted(taken) == list(range(3, 11))
    # The files of one shared series get that series' one number.
    shared = [book.series_number("1.2", 1, "1.2.9") for _ in range(3)]
    assert shared == [11, 11, 11]
    assert archive.asked == 1


def test_a_shared_series_the_archive_holds_keeps_its_number() -> None:
    """A same-series batch sent again (a re-run, a hot folder's next round) joins its series
    under the SeriesNumber the archive gave it, not a new one."""

    class Holding(Archive):
        def series_number(self, series_uid: str) -> int | None:
            return 4 if series_uid == "1.2.9" else None

    archive = Holding()
    archive.series["1.2"] = [1, 4]
    book = Numbers(archive)
    assert [book.series_number("1.2", 1, "1.2.9") for _ in range(2)] == [4, 4]
    assert book.series_number("1.2", 1, "1.2.10") == 5
    assert book.series_number("1.2", 1) == 6
