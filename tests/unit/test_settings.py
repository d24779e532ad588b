import pytest

from screener.settings import Settings


def test_environment_then_flags_override_defaults():
    env = {"SCREENER_PARTITIONS": "12", "SCREENER_BROKER": "kafka://a:1,b:2", "SCREENER_BATCH_WITHIN_S": "0.2"}
    s = Settings.load({"partitions": 3}, environ=env)
    assert s.partitions == 3  # flag beats environment
    assert s.batch_within_s == 0.2
    assert s.bootstrap_servers == ["a:1", "b:2"]
    assert s.faust_broker == "kafka://a:1;b:2"


def test_topic_names_share_one_prefix():
    s = Settings.load({"topic_prefix": "cn-"}, environ={})
    assert [s.manifests_topic, s.decisions_topic, s.flagged_topic, s.dead_letter_topic] == \
        ["cn-manifests", "cn-decisions", "cn-flagged", "cn-dead-letter"]


def test_required_peak_rate_is_daily_volume_times_peak_factor():
    s = Settings.load(environ={})
    assert round(s.required_peak_rate) == 2315


def test_bad_environment_value_names_the_variable():
    with pytest.raises(ValueError, match="SCREENER_PARTITIONS"):
        Settings.load(environ={"SCREENER_PARTITIONS": "many"})
