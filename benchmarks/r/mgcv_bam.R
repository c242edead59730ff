# Fit mgcv::bam(discrete = TRUE) with ti() terms for every main effect and
# interaction up to a given order on binary training data, predict test rows.
# Usage: Rscript mgcv_bam.R train.bin n d test.bin m out.bin order k1 k2 k3 threads
#   train.bin: n*(d+1) float64, row-major rows (x0..x{d-1}, y); test.bin: m*d float64 rows
#   k1, k2, k3: basis dimension per margin of main effects, two-way and three-way
#   terms (0 = mgcv's default). out.bin: m float64 predictions.
#   Prints "seconds=<wall seconds of the fit>", "edf=<total edf>" and
#   "peak_kb=<peak resident memory of this R process (VmHWM)>".
suppressMessages(library(mgcv))
a <- commandArgs(trailingOnly = TRUE)
n <- as.integer(a[2]); d <- as.integer(a[3]); m <- as.integer(a[5]); ord <- as.integer(a[7])
ks <- as.integer(a[8:10]); threads <- as.integer(a[11])
tr <- matrix(readBin(a[1], "double", n * (d + 1)), ncol = d + 1, byrow = TRUE)
te <- matrix(readBin(a[4], "double", m * d), ncol = d, byrow = TRUE)
xs <- paste0("x", seq_len(d) - 1)
train <- as.data.frame(tr); names(train) <- c(xs, "y")
test <- as.data.frame(te); names(test) <- xs
terms <- c()
for (k in seq_len(min(ord, d))) {
  kk <- if (k <= 3 && ks[k] > 0) sprintf(", k = %d", ks[k]) else ""
  for (sub in combn(xs, k, simplify = FALSE)) terms <- c(terms, sprintf("ti(%s%s)", paste(sub, collapse = ","), kk))
}
form <- as.formula(paste("y ~", paste(terms, collapse = " + ")))
t0 <- proc.time()[["elapsed"]]
fit <- bam(form, data = train, method = "fREML", discrete = TRUE, nthreads = threads)
t1 <- proc.time()[["elapsed"]]
writeBin(as.numeric(predict(fit, test)), a[6])
cat(sprintf("seconds=%.4f\n", t1 - t0))
cat(sprintf("edf=%.3f\n", sum(fit$edf)))
hwm <- grep("^VmHWM", readLines("/proc/self/status"), value = TRUE)
cat(sprintf("peak_kb=%s\n", gsub("[^0-9]", "", hwm)))
