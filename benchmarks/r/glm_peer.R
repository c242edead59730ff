# Fit one binomial or Poisson peer on a training CSV; predict the mean
# (probability or count mean) at the training rows and at a test CSV.
# Usage: Rscript glm_peer.R peer family train.csv test.csv out.csv order seed
#   peer: "gss" (gss::gssanova, its defaults: direct cross-validation,
#         Gu & Xiang 2001) or "mgcv" (mgcv::gam, one ti() per main effect
#         and interaction up to `order`, REML);
#   family: "binomial" (y in {0, 1}) or "poisson" (counts);
#   out.csv: column pred (training rows, then test rows).
# Prints "seconds=<wall seconds of the fit>".
args <- commandArgs(trailingOnly = TRUE)
peer <- args[1]; family <- args[2]; order <- as.integer(args[6]); seed <- as.integer(args[7])
train <- read.csv(args[3]); test <- read.csv(args[4])
xs <- setdiff(names(train), "y")
fam <- if (family == "binomial") binomial() else poisson()
if (peer == "gss") {
  suppressMessages(library(gss))
  form <- as.formula(if (order == 1) paste("y ~", paste(xs, collapse = "+")) else
                     sprintf("y ~ (%s)^%d", paste(xs, collapse = "+"), order))
  # gss refuses predictions outside its domains: cubic splines on the range
  # of the training and test rows together, widened 5% each side (gss's rule)
  type <- list()
  for (v in xs) {
    r <- range(c(train[[v]], test[[v]])); w <- 0.05 * diff(r)
    type[[v]] <- list("cubic", c(r[1] - w, r[2] + w))
  }
  set.seed(seed)
  t0 <- proc.time()[["elapsed"]]
  fit <- gssanova(form, family = family, data = train, type = type)
  t1 <- proc.time()[["elapsed"]]
  pred <- c(as.numeric(fam$linkinv(predict(fit, train))),
            as.numeric(fam$linkinv(predict(fit, test))))
} else {
  suppressMessages(library(mgcv))
  terms <- c()
  for (k in seq_len(order)) for (sub in combn(seq_along(xs), k, simplify = FALSE))
    terms <- c(terms, sprintf("ti(%s)", paste(xs[sub], collapse = ",")))
  form <- as.formula(paste("y ~", paste(terms, collapse = " + ")))
  t0 <- proc.time()[["elapsed"]]
  fit <- gam(form, family = fam, data = train, method = "REML")
  t1 <- proc.time()[["elapsed"]]
  pred <- c(as.numeric(predict(fit, train, type = "response")), as.numeric(predict(fit, test, type = "response")))
}
write.csv(data.frame(pred = pred), args[5], row.names = FALSE)
cat(sprintf("seconds=%.4f\n", t1 - t0))
