"""Layers and SequenceModels pickle by value through the .fsq bytes (the C reader builds
them back; no arbitrary pickled objects); fastseq.dask.score on a LocalCluster of two worker
processes gives what a local run gives."""
import pickle
import pickletools

import numpy as np
import pytest

import fastseq
from fastseq import train


@pytest.mark.parametrize("make", [
    lambda: fastseq.LSTM(3, 5, 2, bidirectional=True, proj_size=2, seed=0),
    lambda: fastseq.GRU(3, 5, batch_first=True, reset_after=False, seed=0),
    lambda: fastseq.FastGRNN(3, 5, w_rank=2, seed=0),
    lambda: train.SequenceModel(fastseq.RNN(3, 5, seed=0), train.LastStepLinear(5, 2, seed=1)),
    lambda: fastseq.LSTMCell(3, 5, seed=0),
])
def test_pickle_round_trip_is_bit_exact(make):
    model = make()
    blob = pickle.dumps(model)
    names = {arg for op, arg, _ in pickletools.genops(blob) if isinstance(arg, str)}
    assert {"fastseq._pickle", "from_fsq_bytes"} <= names          # rebuilt from the .fsq bytes
    assert not any(n.startswith("fastseq.") and n not in ("fastseq._pickle", "fastseq.cells") for n in names)
    back = pickle.loads(blob)
    assert type(back) is type(model)
    x = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32)
    if isinstance(model, fastseq.LSTMCell):
        np.testing.assert_array_equal(back(x[0])[0], model(x[0])[0])
    elif isinstance(model, train.SequenceModel):
        np.testing.assert_array_equal(back.predict(x)[0], model.predict(x)[0])
    else:
        np.testing.assert_array_equal(back(x)[0], model(x)[0])
        assert back.config() == model.config()


def test_unpickling_validates_the_bytes():
    from fastseq._pickle import from_fsq_bytes, to_fsq_bytes
    data = bytearray(to_fsq_bytes(fastseq.GRU(2, 3, seed=0)))
    data[-1] ^= 0xFF
    with pytest.raises(ValueError):
        from_fsq_bytes(bytes(data))


@pytest.fixture(scope="module")
def client():
    pytest.importorskip("dask")
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as c:
        yield c


def test_score_a_dask_array_of_100k_sequences_like_a_local_run(client):
    import dask.array as da
    model = train.SequenceModel(fastseq.GRU(4, 16, batch_first=True, seed=0), train.LastStepLinear(16, 1, seed=0))
    x = da.random.default_rng(0).standard_normal((100_000, 8, 4), chunks=(12_500, 8, 4)).astype(np.float32)
    xn = x.compute()                                                # made on the cluster, not shipped
    out = fastseq.dask.score(model, x, client=client)
    assert out.shape == (100_000, 1)
    result = out.compute()
    local = np.concatenate([model.predict(xn[i:i + 12_500])[0] for i in range(0, 100_000, 12_500)])
    np.testing.assert_array_equal(result, local)
    workers = client.run(lambda: __import__("os").getpid())
    assert len(set(workers.values())) == 2


def test_score_a_time_major_layer_and_a_bag_of_ragged_sequences(client):
    import dask.array as da
    import dask.bag as db
    layer = fastseq.LSTM(3, 6, seed=0)                              # time-major: [T, N, I]
    xn = np.random.default_rng(1).standard_normal((7, 1000, 3)).astype(np.float32)
    out = fastseq.dask.score(layer, da.from_array(xn, chunks=(3, 250, 3)), client=client).compute()
    np.testing.assert_array_equal(out, np.concatenate([layer(xn[:, i:i + 250])[0] for i in range(0, 1000, 250)], axis=1))
    seqs = [xn[:1 + i % 7, i] for i in range(200)]
    res = fastseq.dask.score(layer, db.from_sequence(seqs, npartitions=4), client=client).compute()
    assert len(res) == 200
    for s, r in zip(seqs[:20], res[:20]):
        np.testing.assert_array_equal(r, layer(s)[0])                 # alone vs in a padded batch
    with pytest.raises(ValueError, match=r"expected a 3-D array \[T, N, 3\]"):
        fastseq.dask.score(layer, da.zeros((5, 4, 2), chunks=2))
    with pytest.raises(TypeError, match="dask.array.Array or dask.bag.Bag"):
        fastseq.dask.score(layer, xn)
