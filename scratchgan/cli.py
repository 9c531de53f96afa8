"""The ``scratchgan`` command line."""
import argparse
import sys


def cmd_gradcheck(args):
    from .gradcheck_cases import all_cases, format_table, run_suite
    cases = [c for c in all_cases() if not args.only or c.name.lower() in {n.lower() for n in args.only}]
    if not cases:
        print(f"no gradient-check case matches {args.only}", file=sys.stderr)
        return 2
    rows = run_suite(cases)
    print(format_table(rows))
    return 0 if all(passed for *_, passed in rows) else 1


def build_parser():
    parser = argparse.ArgumentParser(prog="scratchgan", description="GANs with hand-written backprop.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("gradcheck", help="check every layer's and loss's gradients against finite differences",
                       description="Run every layer and loss in several configurations through float64 "
                                   "finite-difference gradient checks and print a table; exits 1 on any failure.")
    p.add_argument("--only", nargs="+", metavar="NAME", help="only these layers/losses (e.g. Conv2d BatchNorm)")
    p.set_defaults(func=cmd_gradcheck)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
