#!/usr/bin/env bash
# mutate.sh runs go-gremlins on each package it is given, one after the
# other, and checks each run's surviving mutants against
# docs/mutation-equivalent.md (scripts/mutants.go): it fails on a survivor
# the list does not hold, on a listed mutant that no longer lives, and on a
# test efficacy below MUTATE_MIN percent. `make mutate` calls it.
#
#   GREMLINS_VERSION  the go-gremlins release (go run fetches it)
#   MUTATE_WORKERS    parallel mutants (the machines are shared: 1)
#   MUTATE_TIMEOUT    how long one package's run may take (transform's
#                     ~350 mutants took over 30 minutes at 10-20 s each
#                     on the shared 2-core machine: 3h)
#   MUTATE_MIN        the lowest test efficacy that passes, in percent
#   MUTATE_OUT        where gremlins' JSON results go (one file a package)
#
# reconcile: only its comparison rules (compare.go, rules.go, hashed.go)
# are checked; its other files need the servers to be exercised, and
# TestStoredCases_AreWhatTheServersStore, the one test that starts them
# (PostgreSQL and MariaDB), is left out of every test run of the mutants
# (go test -skip, through GOFLAGS). gremlins has no option to mutate only
# some files, but it mutates only the lines a `--diff` ref shows changed
# (`git diff --merge-base REF`): a throwaway repository (GIT_DIR under
# $MUTATE_OUT, its work tree the package directory) holds the package's
# other files committed and the checked ones added with --intent-to-add,
# so the diff is the checked files whole, and the other files' mutants are
# SKIPPED instead of run (208 of reconcile's 440, at 10-20 s each on a
# shared machine).
set -uo pipefail

GO=${GO:-go}
GREMLINS_VERSION=${GREMLINS_VERSION:-v0.5.0}
MUTATE_WORKERS=${MUTATE_WORKERS:-1}
MUTATE_TIMEOUT=${MUTATE_TIMEOUT:-3h}
MUTATE_MIN=${MUTATE_MIN:-95}
MUTATE_OUT=${MUTATE_OUT:-.work/mutate}

cd "$(dirname "$0")/.."

# only_files makes the throwaway repository whose diff is the package's
# files named (comma-separated) and nothing else, and prints its GIT_DIR.
only_files() {
	local pkg=$1 files=$2 g others=() f
	g=$MUTATE_OUT/${pkg//\//_}.git
	case $g in /*) ;; *) g=$PWD/$g ;; esac
	rm -rf "$g"
	for f in "$pkg"/*.go; do
		f=${f##*/}
		case $f in *_test.go) continue ;; esac
		case ",$files," in *",$f,"*) continue ;; esac
		others+=("$f")
	done
	if ! (export GIT_DIR=$g GIT_WORK_TREE=$PWD/$pkg
		git init -q && git add -- "${others[@]}" && git add --intent-to-add -- ${files//,/ } &&
			git -c user.name=mutate -c user.email=mutate@localhost -c commit.gpgsign=false commit -q --no-verify -m "the package's files not checked") >&2; then
		echo "mutate: cannot make the repository that limits gremlins to $files of ./$pkg" >&2
		return 1
	fi
	echo "$g"
}
mkdir -p "$MUTATE_OUT"
status=0
for p in "$@"; do
	pkg=${p#./}
	# -count=1: gremlins times each mutant's tests by its coverage run
	# (times --timeout-coefficient); a cached run would time the cache.
	goflags="${GOFLAGS:-} -count=1"
	files=
	diff=() gitenv=()
	case $pkg in
	reconcile)
		goflags="$goflags -skip=^TestStoredCases_AreWhatTheServersStore$"
		files=compare.go,rules.go,hashed.go
		;;
	esac
	if [ -n "$files" ]; then
		gitdir=$(only_files "$pkg" "$files") || { status=1; continue; }
		diff=(--diff HEAD)
		gitenv=(GIT_DIR="$gitdir" GIT_WORK_TREE="$PWD/$pkg")
	fi
	out=$MUTATE_OUT/${pkg//\//_}.json
	rm -f "$out"
	echo "== gremlins unleash ./$pkg"
	if ! env "${gitenv[@]}" GOFLAGS="$goflags" timeout "$MUTATE_TIMEOUT" "$GO" run "github.com/go-gremlins/gremlins/cmd/gremlins@$GREMLINS_VERSION" \
		unleash --workers "$MUTATE_WORKERS" --timeout-coefficient 10 "${diff[@]}" -o "$out" "./$pkg"; then
		echo "mutate: gremlins failed on ./$pkg (or ran longer than $MUTATE_TIMEOUT)" >&2
		status=1
		continue
	fi
	"$GO" run scripts/mutants.go -pkg "$pkg" -results "$out" -files "$files" -min "$MUTATE_MIN" || status=1
done
exit $status
