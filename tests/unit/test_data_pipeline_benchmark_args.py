"""`python -m benchmarks.data_pipeline --n N` times the rate after 8 batches: an --n that fills no
timed batch ended in a bare StopIteration traceback after building its data; it is refused at
once, naming --n and the least that works."""

import pytest

from benchmarks import data_pipeline


def test_an_n_too_small_for_a_timed_batch_is_refused_naming_the_least(capsys):
  with pytest.raises(SystemExit):
    data_pipeline.main(["--n", "64", "--batch", "16"])
  err = capsys.readouterr().err
  assert "--n 64" in err and "at least 144" in err
