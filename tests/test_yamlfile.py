from hypothesis import given
from hypothesis import strategies as st

from postmix.yamlfile import safe_load


def test_yaml_1_1_words_stay_strings_and_true_false_are_booleans():
    data = safe_load("on: user\nyes: no\noff: y\nflag: true\nother: False\nlr: 1.0e-3\nn: 3\n")
    assert data == {"on": "user", "yes": "no", "off": "y", "flag": True, "other": False, "lr": 0.001, "n": 3}


def test_no_python_objects():
    import pytest
    import yaml

    with pytest.raises(yaml.YAMLError):
        safe_load("!!python/object/apply:os.system ['true']")


@given(st.dictionaries(st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=8),
                       st.one_of(st.integers(), st.booleans(), st.text(alphabet="abc xyz", max_size=10)),
                       max_size=5))
def test_round_trips_what_pyyaml_dumps(data):
    import yaml

    assert safe_load(yaml.safe_dump(data)) == data
