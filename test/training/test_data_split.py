"""Train / validation split: by episode, per domain, stable when another domain is added, restricted to
`val_domains` when given."""
import pytest

from tramoe_ros.config import DataConfig, DomainSource
from tramoe_ros.training.data_split import split_episodes


def _config(root, domains, **kwargs) -> DataConfig:
    paths = {"robot": root / "in_domain", "human": root / "ood"}
    return DataConfig(sources=[DomainSource(str(paths[d]), d) for d in domains], val_fraction=0.34, **kwargs)


def test_validation_episodes_do_not_change_when_a_domain_is_added(synthetic_data):
    train_in, val_in = split_episodes(_config(synthetic_data, ["robot"]), seed=3)
    train_both, val_both = split_episodes(_config(synthetic_data, ["robot", "human"]), seed=3)
    assert len(val_in) == 2 and len(train_in) == 4
    assert [e.path for e in val_both if e.domain == "robot"] == [e.path for e in val_in]
    assert {e.path for e in train_in} | {e.path for e in val_in} == {e.path for e in train_both + val_both
                                                                      if e.domain == "robot"}
    assert not {e.path for e in train_both} & {e.path for e in val_both}


def test_val_domains_keep_the_other_domains_for_training(synthetic_data):
    train, val = split_episodes(_config(synthetic_data, ["robot", "human"], val_domains=["robot"]), seed=0)
    assert {e.domain for e in val} == {"robot"}
    assert sum(e.domain == "human" for e in train) == 6


def test_unknown_val_domain_is_named(synthetic_data):
    with pytest.raises(ValueError, match=r"val_domains names \['sim'\]"):
        split_episodes(_config(synthetic_data, ["robot"], val_domains=["sim"]), seed=0)
