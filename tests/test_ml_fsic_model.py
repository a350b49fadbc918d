"""Word-vector guided prototypes: the fallback, the authors' block and its ablations, masking by support labels,
the score."""

from __future__ import annotations

import torch

from papers.ml_fsic.model import PrototypeModelConfig, WordGuidedPrototypes, episode_loss, score

SMALL = PrototypeModelConfig(backbone="resnet10t", dim=32, heads=4, mlp_dim=64, dropout=0.0)
SMALL_CHANNELS = 512  # resnet10t's last stage


def model(**options) -> WordGuidedPrototypes:
    torch.manual_seed(0)
    return WordGuidedPrototypes(PrototypeModelConfig(**{**SMALL.__dict__, **options}), word_dim=300).eval()


def test_score_is_twenty_times_one_minus_the_normalized_distance():
    a, b = torch.tensor([[3.0, 0.0]]), torch.tensor([[0.0, 2.0], [5.0, 0.0]])
    torch.testing.assert_close(score(a, b), torch.tensor([[20 * (1 - 2**0.5), 20.0]]))


def test_label_without_support_images_falls_back_to_its_word_vector():
    net = model()
    local, global_ = net.features(torch.randn(3, 3, 64, 64))
    labels = torch.randn(4, 32)
    targets = torch.tensor([[1, 0, 0, 1], [1, 1, 0, 0], [0, 1, 0, 1]], dtype=torch.float32)  # label 2: no image
    prototypes, support_scores = net.prototypes(local, global_, targets, labels)
    torch.testing.assert_close(prototypes[2], labels[2])  # p_l = t_l
    assert not torch.allclose(prototypes[0], labels[0])
    assert prototypes.shape == (4, 32) and support_scores.shape == (3, 4)


def test_attention_gives_one_part_per_image_and_label_and_only_labeled_images_count():
    net = model()
    local, global_ = net.features(torch.randn(3, 3, 64, 64))
    labels = torch.randn(2, 32)
    assert net.attend(labels, local).shape == (3, 2, 32)  # z_{i,l}
    targets = torch.tensor([[1, 0], [1, 1], [0, 1]], dtype=torch.float32)
    before, _ = net.prototypes(local, global_, targets, labels)
    changed_local, changed_global = local.clone(), global_.clone()
    changed_local[2], changed_global[2] = torch.randn_like(local[2]), torch.randn_like(global_[2])
    after, _ = net.prototypes(changed_local, changed_global, targets, labels)
    torch.testing.assert_close(after[0], before[0])  # image 2 lacks label 0: it cannot move p_0
    assert not torch.allclose(after[1], before[1])


def test_ablation_without_a_block_uses_the_global_vectors():
    net = model(attention="global_vector")
    assert net.attend is None
    local, global_ = net.features(torch.randn(2, 3, 64, 64))
    prototypes, _ = net.prototypes(local, global_, torch.tensor([[1.0], [0.0]]), torch.randn(1, 32))
    torch.testing.assert_close(prototypes[0], global_[0])  # one labeled image: its v


def test_the_authors_block_has_no_residual_from_the_label_query():
    """Over identical locations the attention gives the same value whatever the query: without the query
    residual every label then gets the same z (atten_purify.py: Block), with it z moves with t_l."""
    labels, flat = torch.randn(3, 32), torch.randn(2, SMALL_CHANNELS, 1, 1).expand(-1, -1, 2, 2)
    authors = model().attend(labels, flat)
    torch.testing.assert_close(authors[:, 0], authors[:, 1])
    residual = model(block="query_residual").attend(labels, flat)
    assert not torch.allclose(residual[:, 0], residual[:, 1])
    features = torch.randn(2, SMALL_CHANNELS, 2, 2)
    z = model().attend(labels, features)
    assert not torch.allclose(z[:, 0], z[:, 1])  # distinct locations: each label query attends its own way
    torch.testing.assert_close(z.mean(-1), torch.zeros(2, 3), atol=1e-5, rtol=0)  # the final encoder_norm
    torch.testing.assert_close(z.std(-1, unbiased=False), torch.ones(2, 3), atol=1e-3, rtol=0)


def test_uniform_attention_ignores_the_query_and_keeps_the_rest_of_the_block():
    net = model(attention="uniform")
    features = torch.randn(2, SMALL_CHANNELS, 2, 2)
    z = net.attend(torch.randn(3, 32), features)
    torch.testing.assert_close(z[:, 0], z[:, 2])  # no label-specific attention: one z per image
    same_weights = model()
    same_weights.attend.attention.uniform = True
    torch.testing.assert_close(same_weights.attend(torch.randn(3, 32), features), z)  # same parameters, same z


def test_batched_label_queries_equal_the_authors_loop_over_one_label_at_a_time():
    net = model()
    labels, features = torch.randn(4, 32), torch.randn(3, SMALL_CHANNELS, 2, 2)
    batched = net.attend(labels, features)
    for label in range(4):
        torch.testing.assert_close(net.attend(labels[label : label + 1], features)[:, 0], batched[:, label])


def test_episode_forward_and_losses():
    net = model()
    episode = {
        "support": torch.randn(3, 3, 64, 64),
        "support_targets": torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]),
        "query": torch.randn(4, 3, 64, 64),
        "query_targets": torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.0]]),
        "word_vectors": torch.randn(2, 300),
    }
    output = net(episode)
    assert output["query_scores"].shape == (4, 2) and output["support_scores"].shape == (3, 2)
    with_support, without = episode_loss(output, episode), episode_loss(output, episode, support_loss=False)
    assert with_support > without > 0


def test_fine_tuned_classifier_trains_on_episode_labels_and_fits_a_head_per_episode():
    from papers.ml_fsic.baselines import FineTunedClassifier

    torch.manual_seed(0)
    classifier = FineTunedClassifier(SMALL, labels=10).eval()
    episode = {
        "support": torch.randn(4, 3, 64, 64),
        "support_targets": torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 1.0]]),
        "query": torch.randn(3, 3, 64, 64),
        "query_targets": torch.zeros(3, 2),
        "label_ids": torch.tensor([7, 2]),
    }
    output = classifier(episode)
    features = classifier.features(torch.cat([episode["support"], episode["query"]]))
    torch.testing.assert_close(output["query_scores"], classifier.head(features[4:])[:, [7, 2]])
    assert classifier.fit_and_score(episode).shape == (3, 2)
    fitted_on_queries = {**episode, "query": episode["support"]}
    scores = torch.sigmoid(classifier.fit_and_score(fitted_on_queries))
    assert ((scores > 0.5).float() == episode["support_targets"]).all()  # the head fits its support set
    without_support = {**episode, "support": episode["support"][:0], "support_targets": torch.zeros(0, 2)}
    assert classifier.fit_and_score(without_support).abs().sum() == 0  # no word vectors: nothing to go on


def test_laso_augments_the_support_set_with_set_operations_on_every_pair():
    from papers.ml_fsic.baselines import LaSOClassifier

    torch.manual_seed(0)
    laso = LaSOClassifier(SMALL, labels=10).eval()
    features = torch.rand(3, laso.head.in_features)
    targets = torch.tensor([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    augmented, labels = laso.support_set(features, targets)
    assert augmented.shape == (3 + 3 * 6, features.shape[1])  # 6 ordered pairs, 3 operations each
    torch.testing.assert_close(augmented[:3], features)
    pairs = [(0, 1), (0, 2), (1, 2), (1, 0), (2, 0), (2, 1)]
    a, b = targets[[p[0] for p in pairs]], targets[[p[1] for p in pairs]]
    torch.testing.assert_close(labels[3:9], a * b)  # intersection
    torch.testing.assert_close(labels[9:15], torch.maximum(a, b))  # union
    torch.testing.assert_close(labels[15:], a * (1 - b))  # a minus b
    torch.testing.assert_close(labels[3], torch.tensor([0.0, 1.0, 0.0]))


def test_laso_training_loss_reaches_the_set_operation_networks():
    from papers.ml_fsic.baselines import LaSOClassifier

    torch.manual_seed(0)
    laso = LaSOClassifier(SMALL, labels=10)
    episode = {
        "support": torch.randn(2, 3, 64, 64),
        "support_targets": torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
        "query": torch.randn(2, 3, 64, 64),
        "query_targets": torch.tensor([[1.0, 1.0], [0.0, 1.0]]),
        "label_ids": torch.tensor([3, 5]),
    }
    output = laso(episode)
    assert output["query_scores"].shape == (2, 2) and output["auxiliary_loss"] > 0
    (episode_loss(output, episode) + output["auxiliary_loss"]).backward()
    for network in (laso.intersection, laso.union, laso.difference):
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in network.parameters())
