"""Serving under load: one long-lived session of an export (as a model server holds it) answers a
run of the largest requests the export allows, interleaved with requests it must refuse, with
the same answers throughout and bounded memory."""

import gc
import resource
import time

import numpy as np
import pytest
import tensorflow as tf

from synthblend.trainers import export
from synthblend.zoo.base import share_labels

# Good requests in each of the two measured loops (the first with a bad request before every other
# one, each bad request several times), after a warm-up that sends every kind of request once.
ROUNDS = 600
SEEDS = (0, 7, 123)
# How much the resident memory may grow over the measured loop of 1,500 requests. It grows by
# under 1 MB; keeping every answer (32 images of 28x28 float32, 100 KB) alive adds about 95 MB.
RSS_GROWTH_LIMIT_MB = 16


class Server:
    """One SavedModel loaded once into a `tf.compat.v1.Session` with the session loader TF
    Serving uses; `answer` runs one request on it."""

    def __init__(self, path):
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default():
            self.meta_graph = tf.compat.v1.saved_model.load(self.session, ["serve"], path)

    def answer(self, name, inputs):
        """The outputs of signature `name` for `inputs` (`{input name: array}`).

        The arrays reach the C++ session as they are, as a request's tensors reach a server's:
        `Session.run` would first convert each to its placeholder's dtype and check its shape in
        Python, which would hide the server's own answer to a wrong dtype or shape.
        """
        signature = self.meta_graph.signature_def[name]
        assert set(inputs) <= set(signature.inputs), (name, sorted(inputs))
        feeds = {self.graph.get_tensor_by_name(signature.inputs[key].name)._as_tf_output(): np.asarray(value)
                 for key, value in inputs.items()}
        keys = sorted(signature.outputs)
        fetches = [self.graph.get_tensor_by_name(signature.outputs[key].name)._as_tf_output() for key in keys]
        return dict(zip(keys, self.session._call_tf_sessionrun(None, feeds, fetches, [], None)))

    def close(self):
        self.session.close()


def resident_mb():
    """This process's resident memory in MB (its peak where /proc is missing)."""
    try:
        with open("/proc/self/status") as file:
            for line in file:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def good_requests(metadata):
    """`{kind: function(seed) -> (signature, inputs)}`: requests of the largest size the export
    allows, the same inputs for the same seed."""
    limit, classes = metadata["max_samples"], metadata["data_spec"]["num_classes"]
    latent_dim = metadata["config"]["latent_dim"]

    def sample(seed):
        return "sample", {"num_samples": np.int32(limit), "seed": np.int64(seed)}

    def sample_labels(seed):
        labels = np.random.default_rng(seed).integers(0, classes, limit).astype(np.int32)
        return "sample_labels", {"labels": labels, "seed": np.int64(seed)}

    def serving_default(seed):
        rng = np.random.default_rng(seed)
        return "serving_default", {"z": rng.normal(size=(limit, latent_dim)).astype(np.float32),
                                   "labels": rng.integers(0, classes, limit).astype(np.int32)}

    return {"sample": sample, "sample_labels": sample_labels, "serving_default": serving_default}


def bad_requests(metadata):
    """Requests the export must refuse with INVALID_ARGUMENT: (kind, signature, inputs, words in
    the error). For counts and labels the words are the limit the request breaks, for a dtype the
    dtype expected, for a shape or a missing input what TensorFlow's own message names."""
    limit, classes = metadata["max_samples"], metadata["data_spec"]["num_classes"]
    latent_dim = metadata["config"]["latent_dim"]
    most, labels_range = f"at most {limit}", f"0..{classes - 1}"
    seed = np.int64(1)

    def z(rows, width=latent_dim, dtype=np.float32):
        return np.zeros((rows, width), dtype)

    def labels(count):
        return np.zeros(count, np.int32)

    return [
        ("count above the limit", "sample", {"num_samples": np.int32(limit + 1), "seed": seed}, most),
        ("count above the limit", "sample", {"num_samples": np.int32(2**31 - 1), "seed": seed}, most),
        ("count below 1", "sample", {"num_samples": np.int32(0), "seed": seed}, "at least 1"),
        ("count below 1", "sample", {"num_samples": np.int32(-1), "seed": seed}, "at least 1"),
        ("count below 1", "sample", {"num_samples": np.int32(-2**31), "seed": seed}, "at least 1"),
        ("wrong dtype", "sample", {"num_samples": np.float32(limit), "seed": seed}, "int32"),
        ("wrong dtype", "sample", {"num_samples": np.int64(limit), "seed": seed}, "int32"),
        ("wrong dtype", "sample", {"num_samples": np.array(b"4"), "seed": seed}, "int32"),
        ("wrong dtype", "sample", {"num_samples": np.int32(4), "seed": np.int32(1)}, "int64"),
        ("wrong dtype", "sample", {"num_samples": np.int32(4), "seed": np.float64(1)}, "int64"),
        ("wrong shape", "sample", {"num_samples": np.array([4, 4], np.int32), "seed": seed}, "shape"),
        ("wrong shape", "sample", {"num_samples": np.array([], np.int32), "seed": seed}, "shape"),
        ("wrong shape", "sample", {"num_samples": np.int32(4), "seed": np.array([1, 2], np.int64)}, "shape"),
        ("labels above the limit", "sample_labels", {"labels": labels(limit + 1), "seed": seed}, most),
        ("labels above the limit", "sample_labels", {"labels": labels(100 * limit), "seed": seed}, most),
        ("labels above the limit", "sample_labels", {"labels": np.zeros((limit, 2), np.int32), "seed": seed}, most),
        ("no labels", "sample_labels", {"labels": labels(0), "seed": seed}, "at least 1"),
        ("label out of range", "sample_labels", {"labels": np.array([0, classes], np.int32), "seed": seed},
         labels_range),
        ("label out of range", "sample_labels", {"labels": np.array([-1], np.int32), "seed": seed}, labels_range),
        ("wrong dtype", "sample_labels", {"labels": np.zeros(4, np.float32), "seed": seed}, "int32"),
        ("wrong dtype", "sample_labels", {"labels": np.zeros(4, np.int64), "seed": seed}, "int32"),
        ("wrong shape", "sample_labels", {"labels": labels(4), "seed": np.zeros(2, np.int64)}, "shape"),
        ("latents above the limit", "serving_default", {"z": z(limit + 1), "labels": labels(limit + 1)}, most),
        ("latents above the limit", "serving_default", {"z": z(50 * limit), "labels": labels(50 * limit)}, most),
        ("label out of range", "serving_default", {"z": z(2), "labels": np.array([0, classes], np.int32)},
         labels_range),
        ("wrong dtype", "serving_default", {"z": z(2, dtype=np.float64), "labels": labels(2)}, "float"),
        ("wrong dtype", "serving_default", {"z": z(2), "labels": np.zeros(2, np.int64)}, "int32"),
        ("wrong shape", "serving_default", {"z": z(2, latent_dim + 1), "labels": labels(2)}, "incompatible"),
        ("wrong shape", "serving_default", {"z": z(2), "labels": labels(3)}, "[Dd]imension 0"),
        ("wrong shape", "serving_default", {"z": np.zeros(latent_dim, np.float32), "labels": labels(1)}, "[Rr]ank"),
        ("missing input", "sample", {"num_samples": np.int32(4)}, "seed"),
    ]


class Checker:
    """Checks answers of good requests: shape, dtype, data range, labels, and the same samples for
    the same request as the first time it was answered."""

    def __init__(self, metadata):
        self.limit = metadata["max_samples"]
        self.shape = tuple(metadata["samples"]["shape"])
        self.low, self.high = metadata["samples"]["range"]
        self.shares = share_labels(self.limit, metadata["class_counts"]).numpy()
        self.first = {}

    def check(self, kind, seed, inputs, outputs, context):
        samples = outputs["samples"]
        assert samples.dtype == np.float32 and samples.shape == (self.limit, *self.shape), (context, samples.shape)
        assert np.all(np.isfinite(samples)), context
        assert samples.min() >= self.low - 1e-3 and samples.max() <= self.high + 1e-3, (context, samples.min(),
                                                                                      samples.max())
        if kind == "sample":
            assert set(outputs) == {"samples", "labels"}, context
            np.testing.assert_array_equal(outputs["labels"], self.shares, err_msg=context)
        elif kind == "sample_labels":
            assert set(outputs) == {"samples", "labels"}, context
            assert outputs["labels"].dtype == np.int32, context
            np.testing.assert_array_equal(outputs["labels"], inputs["labels"], err_msg=context)
        else:
            assert set(outputs) == {"samples"}, context
        first = self.first.setdefault((kind, seed), samples)
        np.testing.assert_array_equal(samples, first, err_msg=f"{context}: not the first answer for this seed")


def test_one_session_answers_the_largest_requests_refuses_bad_ones_and_keeps_its_memory(conditional_export):
    _, export_dir = conditional_export
    path, metadata = export.read_export(str(export_dir))
    assert metadata["max_samples"] == 32 and metadata["config"]["conditional"]
    goods, bads = good_requests(metadata), bad_requests(metadata)
    kinds = sorted(goods)
    checker = Checker(metadata)
    counts = {"good " + kind: 0 for kind in kinds}
    started = time.perf_counter()
    server = Server(path)
    loaded = time.perf_counter()

    def good(index, context):
        kind, seed = kinds[index % len(kinds)], SEEDS[(index // len(kinds)) % len(SEEDS)]
        name, inputs = goods[kind](seed)
        checker.check(kind, seed, inputs, server.answer(name, inputs), f"{context}: {kind} seed={seed}")
        counts["good " + kind] += 1

    def bad(index):
        kind, name, inputs, words = bads[index % len(bads)]
        with pytest.raises(tf.errors.InvalidArgumentError, match=words) as error:
            server.answer(name, inputs)
        counts["bad " + kind] = counts.get("bad " + kind, 0) + 1
        return f"after {kind} ({name}: {str(error.value).splitlines()[0][:100]})"

    try:
        # Warm-up: every good request for every seed, every bad one once.
        for index in range(len(kinds) * len(SEEDS)):
            good(index, "warm-up")
        for index in range(len(bads)):
            good(index, bad(index))
        # `sample_labels` with the labels `sample` drew gives the same samples as `sample`.
        drawn = server.answer(*goods["sample"](SEEDS[0]))
        again = server.answer("sample_labels", {"labels": drawn["labels"], "seed": np.int64(SEEDS[0])})
        np.testing.assert_allclose(again["samples"], drawn["samples"], rtol=1e-5, atol=1e-3)
        assert not np.allclose(checker.first[("sample", SEEDS[0])], checker.first[("sample", SEEDS[1])])
        warm = time.perf_counter()
        gc.collect()
        before = resident_mb()

        # The measured loop: good requests, every other one right after the next bad one.
        requests, trace = 0, []
        loop_started = time.perf_counter()
        for index in range(ROUNDS):
            if index % (ROUNDS // 4) == 0:
                trace.append(resident_mb())
            context = "loop"
            if index % 2 == 1:
                context = bad(index // 2)
                requests += 1
            good(index, context)
            requests += 1
        loop_seconds = time.perf_counter() - loop_started
        good_started = time.perf_counter()
        for index in range(ROUNDS):
            if index % (ROUNDS // 4) == 0:
                trace.append(resident_mb())
            good(index, "good only")
        good_seconds = time.perf_counter() - good_started
        gc.collect()
        after = resident_mb()
    finally:
        server.close()

    print(f"\nserving soak: load {loaded - started:.2f} s, warm-up {warm - loaded:.2f} s; measured loop "
          f"{requests} requests in {loop_seconds:.2f} s ({requests / loop_seconds:.1f}/s), then {ROUNDS} good "
          f"requests of {metadata['max_samples']} samples in {good_seconds:.2f} s ({ROUNDS / good_seconds:.1f}/s)")
    print(f"serving soak: resident memory {before:.1f} MB after warm-up, {after:.1f} MB at the end "
          f"({after - before:+.1f} MB, limit +{RSS_GROWTH_LIMIT_MB} MB); on the way: "
          + ", ".join(f"{value:.1f}" for value in trace))
    print("serving soak: requests by kind: " + ", ".join(f"{kind} {count}" for kind, count in sorted(counts.items())))
    assert after - before < RSS_GROWTH_LIMIT_MB, (before, after)
