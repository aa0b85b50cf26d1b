"""The printers' shortcuts give what sympy's own code gives: parts remembered across values
(`notation.Remembering`), a number's sign read off rather than asked of sympy's assumptions
(`_minus`, `_precedence`), and a plain sum taken as written without `sp.expand`."""

import itertools

import sympy as sp
from sympy.printing.precedence import precedence
from sympy.printing.printer import Printer

from data_prep.engine import notation as N
from data_prep.engine.exact import X

S3, S13, PI = sp.sqrt(3), sp.sqrt(13), sp.pi


def values() -> list:
  """Numbers of the engine's shapes, with terms in both orders of size (sympy orders a
  number's terms by value: 2 + 3√3 but 13√3 + 39), both signs, shared parts, and a few
  non-numbers (expressions in x, logarithms, a Float alone and inside a product)."""
  out = []
  for a, b in itertools.product((2, -2, 39, sp.Rational(-7, 2), sp.Rational(9, 7)),
                                (3, -3, 13, sp.Rational(-5, 2))):
    out += [a + b * S3, a + b * PI, a - b * S13 / 4, b * S3 + a * PI + 1, a * S3 * PI + b]
    out += [a * b * S3, sp.Rational(1, 1) * a / b, (a + b * S3) / PI, a * (1 + S3)]
  out += [X ** 2 - 3 * X + 2, 3 * sp.sin(X + PI / 6), sp.log(8) / sp.log(2) + 1,
          -sp.log(3) * 2, sp.Float(2.5), sp.Float(2.5) * S3 + 1, -S3, -PI / 2, 1 - S3,
          sp.Rational(-1, 2) - S3 / 2, sp.Integer(0), sp.oo, -sp.oo]
  return out


def test_the_machine_form_is_sympys_str_with_parts_remembered():
  printer = N.MachinePrinter()  # one printer for all: later values meet remembered parts
  for v in values() + values()[::-1]:
    assert printer.doprint(v) == str(v), sp.srepr(v)


def test_remembered_parts_print_as_afresh():
  class Afresh(N.HumanPrinter):
    def _print(self, expr, **kwargs):
      return Printer._print(self, expr, **kwargs)

  warm = N.HumanPrinter()
  for v in values() + values()[::-1]:
    assert warm.doprint(v) == Afresh().doprint(v), sp.srepr(v)


def test_signs_and_binding_read_off_are_sympys():
  for v in values():
    for e in (v, -v, *sp.Add.make_args(v), *sp.Mul.make_args(v)):
      assert N._minus(e) == e.could_extract_minus_sign(), sp.srepr(e)
      assert N._precedence(e) == precedence(e), sp.srepr(e)


def test_a_plain_sum_is_already_written():
  plain = [v for v in values() if N._plain_sum(v)]
  assert len(plain) > 40
  for v in plain:
    assert N._written.__wrapped__(v) == v and N.human(N._written.__wrapped__(v)) == N.human(v)
  for v in ((2 + 3 * S3) / PI, 1 + sp.log(8), X + 1, PI * (1 + S3), 1 + PI ** 2,
            sp.Add(1, sp.Pow(3, sp.Rational(-1, 3), evaluate=False), evaluate=False)):
    assert not N._plain_sum(v), v


def test_a_sum_of_numbers_is_ordered_as_sympy_orders_it():
  """`_number_terms` writes out sympy's order of a number's terms (by complex value, each
  factor's value remembered): the same list as `as_ordered_terms` for the shapes' numbers, sums
  with π, logs and i, the a - b·c case sympy puts first, and terms within a rounding of each
  other; a sum with a factor that is not a number is left to sympy."""
  near = sp.sqrt(2) * 10 ** 8 + 1  # 141421357.23... against a term one below its integer part
  sums = [v for v in values() if v.is_Add and not v.free_symbols]
  sums += [4 - 2 * sp.sqrt(10), PI - 3 * S3, 5 + sp.I * S3 - 2 * sp.I, S3 * sp.I + PI,
           sp.log(2) + S3 / 7 - 1, near - 1 + S13, sp.Add(near, -141421356, evaluate=False),
           -sp.Rational(1, 3) - S3 / 3 - PI / 9]
  assert len(sums) > 60
  for v in sums:
    assert N._number_terms(v) == v.as_ordered_terms(), sp.srepr(v)
  assert N._number_terms(X ** 2 - 3 * X + 2) is None
