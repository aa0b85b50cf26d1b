"""mathvlm.demo.confirm's accuracy: all questions and free-form (answers that are no option
letter) counted apart, on rows where the two differ (the quick demo's models answer nothing right,
so its run cannot tell them apart)."""

from mathvlm.demo import confirm


def test_accuracy_counts_all_and_free_form_apart():
  rows = [{"answer": "B", "correct": True}, {"answer": "C", "correct": True},
          {"answer": "4√3", "correct": True}, {"answer": "12", "correct": False},
          {"answer": "7", "correct": False}]
  assert confirm.accuracy(rows) == dict(all=60.0, free_form=33.33, questions=5,
                                        free_form_questions=3)
  assert confirm.accuracy([]) == dict(all=0.0, free_form=0.0, questions=0, free_form_questions=0)
