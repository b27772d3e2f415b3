# Sourced by the build scripts that check out pinned trees from bare git mirrors without
# network (tools/rp2/build_image.sh, tools/mp32/build.sh). Needs MIRRORS (a dir of bare
# mirrors named owner+name/repo) and WORK (a scratch dir for the temporary index).

checkout() {  # checkout <mirror> <rev> <dest>: the tree of <rev>, no .git
  local g="$MIRRORS/$1/repo" idx="$WORK/index.$1"
  rm -rf "$3"; mkdir -p "$3"
  GIT_INDEX_FILE=$idx git -C "$g" read-tree "$2"
  # A few blobs are absent from the mirrors (an RP2350 .svd, an mbedtls generated
  # test file); no build here uses them: leave them out rather than fail.
  GIT_INDEX_FILE=$idx git -C "$g" ls-files -s | awk '$1!="160000"{print $2}' |
    git -C "$g" cat-file --batch-check | awk '$2=="missing"{print $1}' |
    while read -r o; do
      GIT_INDEX_FILE=$idx git -C "$g" ls-files -s | awk -v o="$o" '$2==o{print $4}'
    done | while read -r p; do
      echo "  (absent from mirror, skipped: $1 $p)"
      GIT_INDEX_FILE=$idx git -C "$g" rm -q --cached -- "$p"
    done
  GIT_INDEX_FILE=$idx git -C "$g" --work-tree="$3" checkout-index -a -f
  rm -f "$idx"
}

tag_release() {  # tag_release <dir> <tag>: a git repo at <dir> tagged <tag>, so the
  # banner shows the release tag, not "-dirty" (a checked-out tree has no git metadata)
  (cd "$1" && git init -q . && git add -A >/dev/null 2>&1 &&
    git -c user.name=build -c user.email=build@local commit -q -m "$2" && git tag "$2")
}
