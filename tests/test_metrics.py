import numpy as np
import pytest

from synthblend.datasets import sources
from synthblend.trainers import measures


def test_permuted_labelling_matches_perfectly():
    labels = np.random.default_rng(0).integers(0, 10, 500)
    permutation = np.random.default_rng(1).permutation(10)
    accuracy, matching = measures.classifier.best_matching_accuracy(permutation[labels], labels)
    assert accuracy == 1.0
    assert all(matching[permutation[label]] == label for label in range(10))


def test_matching_accuracy_counts_the_best_mapping_only():
    labels = np.array([0, 0, 0, 1, 1, 1])
    clusters = np.array([1, 1, 0, 0, 0, 0])  # cluster 0 is mostly label 1, cluster 1 all label 0
    accuracy, matching = measures.classifier.best_matching_accuracy(clusters, labels)
    assert matching == {0: 1, 1: 0}
    assert accuracy == pytest.approx(5 / 6)
    # Two clusters for one label: only one of them can be matched.
    assert measures.classifier.best_matching_accuracy(np.array([0, 1, 2, 2]), np.array([0, 0, 1, 1]))[0] == pytest.approx(3 / 4)


def test_classifier_learns_shapes_from_data_space_inputs():
    dataset, spec = sources.load("shapes")
    model = measures.classifier.train_classifier(dataset.take(2000), spec, epochs=2, batch_size=64)
    test, _ = sources.load("shapes", "test")
    batch = next(iter(test.batch(400)))
    predicted = measures.classifier.predict_classes(model, batch["x"].numpy())  # raw uint8 pixel values
    assert np.mean(predicted == batch["y"].numpy()) > 0.5  # chance is 0.25


def test_classifier_trains_the_batches_asked_for_over_repeated_examples():
    dataset, spec = sources.load("shapes")
    model = measures.classifier.train_classifier(dataset.take(20), spec, batch_size=8, steps=7)
    assert int(model.optimizer.iterations) == 7  # more than the 3 batches of one pass
