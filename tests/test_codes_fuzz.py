"""Random strings and dicts: the spec parser either parses or raises ValueError, never anything else."""

from hypothesis import given, settings
from hypothesis import strategies as st

from gan_infogan_plugin import LatentCodeSpec

TOKENS = st.sampled_from(["noise", "cat", "cont", ":", ",", "x", "=", "uniform", "normal", "a", "-1", "0", "3", "10", " ", "*", "0.2", "nan"])


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=40), st.lists(TOKENS, max_size=14).map("".join)))
def test_parse_never_fails_otherwise(text):
    try:
        spec = LatentCodeSpec.parse(text)
    except ValueError:
        return
    assert LatentCodeSpec.parse(str(spec)) == spec
    assert spec.input_dim > 0


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-3, 12) | st.text(max_size=6),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(["noise", "codes", "kind", "classes", "prior", "name", "noise_prior", "noise_scale"]), children, max_size=4),
    max_leaves=12,
)


CODE = st.dictionaries(st.sampled_from(["kind", "classes", "prior", "name"]), JSONISH | st.sampled_from(["cat", "cont", "uniform", "normal", "c9"]), max_size=4)
SPEC_DICT = st.fixed_dictionaries({"noise": JSONISH}, optional={"codes": st.lists(CODE, max_size=3) | JSONISH, "noise_prior": JSONISH, "noise_scale": JSONISH | st.floats()})


@settings(max_examples=400, deadline=None)
@given(JSONISH | SPEC_DICT)
def test_from_dict_never_fails_otherwise(data):
    try:
        spec = LatentCodeSpec.from_dict(data)
    except ValueError:
        return
    assert LatentCodeSpec.from_dict(spec.to_dict()) == spec
