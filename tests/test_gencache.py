"""The generation cache shared by pytest-xdist workers."""

import multiprocessing

from pytest_lvlmbench.gencache import GenerationCache, Generated


def _open_and_write(path, barrier, worker, errors):
    barrier.wait()  # every worker opens the fresh file at the same moment, as xdist workers do
    try:
        GenerationCache(path).put_many({f"key-{worker}": Generated(f"answer {worker}")})
    except Exception as error:  # noqa: BLE001 - reported to the parent, which asserts there are none
        errors.put(repr(error))


def test_workers_opening_a_fresh_cache_at_once_all_succeed(tmp_path):
    context = multiprocessing.get_context("fork")
    workers, rounds = 4, 10
    for round_ in range(rounds):
        path = tmp_path / f"round{round_}" / "generations.sqlite"
        barrier, errors = context.Barrier(workers), context.Queue()
        processes = [context.Process(target=_open_and_write, args=(path, barrier, w, errors)) for w in range(workers)]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        assert errors.empty(), errors.get()
        stored = GenerationCache(path).get_many(f"key-{w}" for w in range(workers))
        assert {key: value.answer for key, value in stored.items()} == {f"key-{w}": f"answer {w}" for w in range(workers)}
