# Helpers shared by the bench/ scripts (sourced, not run).

# The number after "NAME": in the JSON on stdin.
field() { sed -n "s/.*\"$1\": \([0-9.]*\).*/\1/p"; }

# The median of the numbers on stdin, one per line.
median() { sort -g | awk '{v[NR] = $1} END {print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# "lowest-highest" of the numbers on stdin, two decimals.
spread() { sort -g | awk 'NR == 1 {lo = $1} {hi = $1} END {printf "%.2f-%.2f", lo, hi}'; }

# Exits with 2, naming the script, unless $rounds is a positive integer.
check_rounds() {
  case $rounds in '' | *[!0-9]* | 0)
    echo "$1: ROUNDS must be a positive integer" >&2
    exit 2
    ;;
  esac
}
