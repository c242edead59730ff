# gss::ssden on a training CSV; log density at a test CSV.
# Usage: Rscript ssden_peer.R train.csv test.csv out.csv order lo1,hi1,lo2,hi2,... seed
#   The domain is the box given (the same as kcascade's); the model has all
#   interactions up to `order`; gss's defaults otherwise (cross-validation
#   score with alpha = 1.4, q = max(30, 10 n^(2/9)) basis points).
# Writes column logf; prints "seconds=<wall seconds of the fit>".
args <- commandArgs(trailingOnly = TRUE)
suppressMessages(library(gss))
train <- read.csv(args[1]); test <- read.csv(args[2]); order <- as.integer(args[4])
box <- matrix(as.numeric(strsplit(args[5], ",")[[1]]), nrow = 2)
xs <- names(train)
domain <- as.data.frame(box); names(domain) <- xs
form <- as.formula(if (order == 1) paste("~", paste(xs, collapse = "+")) else
                   sprintf("~ (%s)^%d", paste(xs, collapse = "+"), order))
set.seed(as.integer(args[6]))
t0 <- proc.time()[["elapsed"]]
fit <- ssden(form, data = train, domain = domain)
t1 <- proc.time()[["elapsed"]]
logf <- log(dssden(fit, test))   # per unit volume in the units of x
write.csv(data.frame(logf = logf), args[3], row.names = FALSE)
cat(sprintf("seconds=%.4f\n", t1 - t0))
