# Fit one peer of the selection test bed on a training CSV, predict a test CSV.
# Usage: Rscript bed_peer.R peer train.csv test.csv out.csv order types
#   peer: "gss" (gss::ssanova, GCV alpha 1.4, its default) or "mgcv"
#         (mgcv::gam, one ti() per main effect and interaction, REML);
#   order: highest interaction order of the model (as kcascade's `order`);
#   types: one letter per covariate x0..x{d-1}: c (cubic spline),
#          p (periodic on [0, 1)), n (nominal, integer codes).
#   out.csv: column pred. Prints "seconds=<wall seconds of the fit>".
# Nominal covariates: gss takes them as factors; mgcv as a parametric factor
# plus, for each interaction with one continuous covariate, a smooth by the
# factor as an ordered factor (differences from the first level).
args <- commandArgs(trailingOnly = TRUE)
peer <- args[1]; order <- as.integer(args[5]); types <- strsplit(args[6], "")[[1]]
train <- read.csv(args[2]); test <- read.csv(args[3])
xs <- setdiff(names(train), "y")
for (j in seq_along(xs)) if (types[j] == "n") {
  lev <- sort(unique(train[[xs[j]]]))
  train[[xs[j]]] <- factor(train[[xs[j]]], levels = lev)
  test[[xs[j]]] <- factor(test[[xs[j]]], levels = lev)
}
if (peer == "gss") {
  suppressMessages(library(gss))
  form <- as.formula(if (order == 1) paste("y ~", paste(xs, collapse = "+")) else
                     sprintf("y ~ (%s)^%d", paste(xs, collapse = "+"), order))
  type <- list()
  for (j in seq_along(xs)) if (types[j] == "p") type[[xs[j]]] <- list("per", c(0, 1))
  set.seed(1)
  t0 <- proc.time()[["elapsed"]]
  fit <- if (length(type)) ssanova(form, data = train, type = type) else ssanova(form, data = train)
  t1 <- proc.time()[["elapsed"]]
} else {
  suppressMessages(library(mgcv))
  terms <- c(); knots <- list()
  for (j in seq_along(xs)) if (types[j] == "n") {
    of <- paste0(xs[j], "_o")
    train[[of]] <- as.ordered(train[[xs[j]]]); test[[of]] <- as.ordered(test[[xs[j]]])
  }
  for (k in seq_len(order)) for (sub in combn(seq_along(xs), k, simplify = FALSE)) {
    nom <- sub[types[sub] == "n"]; con <- sub[types[sub] != "n"]
    bs <- ifelse(types[con] == "p", "cc", "cr")
    for (j in con) if (types[j] == "p") knots[[xs[j]]] <- c(0, 1)
    if (length(nom) == 0) {
      terms <- c(terms, sprintf("ti(%s, bs=c(%s))", paste(xs[con], collapse = ","),
                                paste(sprintf("'%s'", bs), collapse = ",")))
    } else if (length(nom) == 1 && length(con) == 0) {
      terms <- c(terms, xs[nom])
    } else if (length(nom) == 1 && length(con) == 1) {
      terms <- c(terms, sprintf("s(%s, by=%s_o, bs='%s')", xs[con], xs[nom], bs))
    }   # higher interactions with a nominal covariate: not in the bed
  }
  form <- as.formula(paste("y ~", paste(terms, collapse = " + ")))
  t0 <- proc.time()[["elapsed"]]
  fit <- gam(form, data = train, method = "REML", knots = if (length(knots)) knots else NULL)
  t1 <- proc.time()[["elapsed"]]
}
pred <- as.numeric(predict(fit, test))
write.csv(data.frame(pred = pred), args[4], row.names = FALSE)
cat(sprintf("seconds=%.4f\n", t1 - t0))
