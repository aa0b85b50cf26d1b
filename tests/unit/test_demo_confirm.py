"""mathvlm.demo.confirm's accuracy: all questions, free-form (answers that are no option letter)
and multiple choice counted apart, on rows where they differ (the quick demo's models answer
nothing right, so its run cannot tell them apart); with ranked rows, the options picked by
likelihood too."""

from mathvlm.demo import confirm


def test_accuracy_counts_all_free_form_and_multiple_choice_apart():
  rows = [{"answer": "B", "correct": True}, {"answer": "C", "correct": False},
          {"answer": "4√3", "correct": True}, {"answer": "12", "correct": False},
          {"answer": "7", "correct": False}]
  assert confirm.accuracy(rows) == dict(all=40.0, free_form=33.33, multiple_choice=50.0,
                                        questions=5, free_form_questions=3)
  assert confirm.accuracy([]) == dict(all=0.0, free_form=0.0, multiple_choice=0.0,
                                      questions=0, free_form_questions=0)
  ranked = [dict(r, ranked_correct=r["answer"] == "C") for r in rows]
  assert confirm.accuracy(ranked)["multiple_choice_ranked"] == 50.0
  ranked[0]["ranked_correct"] = True
  assert confirm.accuracy(ranked)["multiple_choice_ranked"] == 100.0
