# Fit gss::ssanova on a training CSV and predict a test CSV.
# Usage: Rscript ssanova_gss.R train.csv test.csv out.csv [formula] [method]
#   train.csv: columns x0..x{d-1}, y; test.csv: columns x0..x{d-1}
#   out.csv: column pred (predictions at the test rows); the fit's wall
#   seconds and gss's smoothing parameters are printed as
#   "seconds=<s>", "nlambda=<log10(n lambda)>", "theta=<log10 theta...>".
# Default formula: y ~ x0*x1*...*x{d-1} (all interactions); method "v" (GCV,
# alpha = 1.4, gss's default); "m" is GML.
suppressMessages(library(gss))
args <- commandArgs(trailingOnly = TRUE)
train <- read.csv(args[1])
test <- read.csv(args[2])
xs <- setdiff(names(train), "y")
form <- if (length(args) >= 4 && nchar(args[4]) > 0) as.formula(args[4]) else
  as.formula(paste("y ~", paste(xs, collapse = "*")))
method <- if (length(args) >= 5) args[5] else "v"
set.seed(1)
t0 <- proc.time()[["elapsed"]]
fit <- ssanova(form, data = train, method = method)
t1 <- proc.time()[["elapsed"]]
pred <- predict(fit, test)
write.csv(data.frame(pred = pred), args[3], row.names = FALSE)
cat(sprintf("seconds=%.4f\n", t1 - t0))
cat(sprintf("nlambda=%.6f\n", fit$nlambda))
cat(sprintf("theta=%s\n", paste(sprintf("%.6f", fit$theta), collapse = ",")))
