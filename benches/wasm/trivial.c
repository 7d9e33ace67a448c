/* Guest for scripts/bench-wasm: a WASI command that does nothing and exits 0, so that
 * running it measures task start alone. */
int main(void) {
    return 0;
}
