/* Sustained memory read bandwidth, for the generation benchmark (tools/bench-generation.ps1): how fast this machine
 * can stream bytes from RAM into the cores, which bounds every runner's tokens per second (each token reads every
 * weight once). Reads a buffer far larger than the caches, with 1 thread and with OpenMP's threads, best of 5.
 * Build: gcc -O3 -march=native -fopenmp bandwidth.c -o bandwidth. Usage: bandwidth [MiB] (default 2048). */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <omp.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

static double pass(const uint64_t *data, size_t n, int threads, uint64_t *sink) {
    double start = now();
    uint64_t total = 0;
    #pragma omp parallel for num_threads(threads) reduction(+:total) schedule(static)
    for (size_t i = 0; i < n; i += 8) {
        total += data[i] + data[i + 1] + data[i + 2] + data[i + 3] + data[i + 4] + data[i + 5] + data[i + 6] + data[i + 7];
    }
    *sink += total;
    return now() - start;
}

int main(int argc, char **argv) {
    size_t mib = argc > 1 ? (size_t)atol(argv[1]) : 2048;
    size_t bytes = mib << 20, n = bytes / sizeof(uint64_t);
    uint64_t *data = aligned_alloc(64, bytes);
    if (!data) { fprintf(stderr, "cannot allocate %zu MiB\n", mib); return 1; }
    for (size_t i = 0; i < n; i++) data[i] = i;
    uint64_t sink = 0;
    int threads[2] = { 1, omp_get_max_threads() };
    for (int t = 0; t < 2; t++) {
        double best = 1e30;
        for (int r = 0; r < 5; r++) { double s = pass(data, n, threads[t], &sink); if (s < best) best = s; }
        printf("threads %d: %.2f GB/s\n", threads[t], bytes / best / 1e9);
    }
    fprintf(stderr, "(checksum %llu)\n", (unsigned long long)sink);
    free(data);
    return 0;
}
