# Fit mgcv::gam with ti() terms for every main effect and interaction (REML)
# on a training CSV and predict a test CSV.
# Usage: Rscript mgcv_ti.R train.csv test.csv out.csv
#   train.csv: columns x0..x{d-1}, y; test.csv: columns x0..x{d-1}
#   out.csv: column pred. Prints "seconds=<wall seconds of the fit>".
suppressMessages(library(mgcv))
args <- commandArgs(trailingOnly = TRUE)
train <- read.csv(args[1])
test <- read.csv(args[2])
xs <- setdiff(names(train), "y")
terms <- c()
for (k in seq_along(xs)) {
  for (sub in combn(xs, k, simplify = FALSE)) terms <- c(terms, sprintf("ti(%s)", paste(sub, collapse = ",")))
}
form <- as.formula(paste("y ~", paste(terms, collapse = " + ")))
t0 <- proc.time()[["elapsed"]]
fit <- gam(form, data = train, method = "REML")
t1 <- proc.time()[["elapsed"]]
write.csv(data.frame(pred = as.numeric(predict(fit, test))), args[3], row.names = FALSE)
cat(sprintf("seconds=%.4f\n", t1 - t0))
