# Sourced: `publish SRC DEST` puts a copy of SRC at DEST in one rename, so that a reader of DEST
# never sees half a file. The copy goes through a temporary name of its own: two builds
# publishing the same output at once (scripts/test's background build of wove-submit and
# scripts/release's, which wait for each other only in cargo's lock) must not take each other's.
publish() {
    local src=$1 dest=$2 tmp
    mkdir -p "$(dirname "$dest")"
    tmp=$(mktemp "$dest.XXXXXX")
    cp "$src" "$tmp"
    chmod --reference="$src" "$tmp"
    mv -f "$tmp" "$dest"
}
