"""Bad input across every command: one table of mistakes a user can make with train, sample,
export, evaluate, blend and utility. Each must end in exit status 2 (usage) or 1 (runtime), one
line on stderr naming the bad value and what is accepted, no traceback, and no change to any
model, export, data or output directory that existed before. A few run as real processes."""

import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import run_tool
from test_train import ROOT, TINY, run_train
from synthblend.trainers import blend, evaluate, export, sample, train, utility

TOOLS = {"train": train.main, "sample": sample.main, "export": export.main, "evaluate": evaluate.main,
         "blend": blend.main, "utility": utility.main}

# Placeholders in the table: {model} conditional dcgan on shapes (28x28x1, classes circle, square,
# triangle, cross), {export} its export, {ring} an unconditional gan on ring (2-D vectors),
# {files} bad files, {out} an output folder holding existing.npz, {fresh} a folder that does not
# exist yet (a new model_dir or export_dir).
BLEND = ["--dataset=shapes", "--model_dir={model}", "--output={out}/blend.npz", "--num_examples=10"]
SAMPLE = ["--model_dir={model}", "--output={out}/samples.npz", "--num_samples=5"]
TRAIN = ["--model=gan", "--dataset=ring", "--model_dir={fresh}", *TINY]

BAD_INPUTS = [
    # (tool, flags, exit status, words the one-line message must contain)
    # -- train: flags, data files -------------------------------------------------------------
    ("train", [*TRAIN, "--batch_size=1.5"], 2, ["--batch_size=1.5", "int"]),
    ("train", [*TRAIN, "--ema_decay=1.5"], 2, ["--ema_decay=1.5", "0.99999"]),
    ("train", [*TRAIN, "--image_size=0"], 2, ["--image_size=0", "range [1, 512]"]),
    ("train", [*TRAIN, "--image_size=100000"], 2, ["--image_size=100000", "512"]),
    ("train", [*TRAIN, "--model=gann"], 2, ["--model=gann", "dcgan"]),
    # -- flags that would change nothing, and flags of another command -----------------------
    ("train", [*TRAIN, "--tpu=grpc://10.0.0.2:8470"], 2, ["--tpu=grpc://10.0.0.2:8470", "--strategy=tpu only"]),
    ("train", [*TRAIN, "--max_rollbacks=5"], 2, ["--max_rollbacks=5", "--nan_policy=rollback only"]),
    ("train", [*TRAIN, "--label_column=churn"], 2, ["--label_column", "apply to tables", "'ring'"]),
    ("train", [*TRAIN, "--image_size=32"], 2, ["--image_size=32", "applies to images", "'ring'"]),
    ("train", [*TRAIN, "--ratio=0.3"], 2, ["--ratio is not a flag of synthblend-train", "synthblend-blend"]),
    ("export", ["--model_dir={model}", "--export_dir={fresh}", "--ratio=0.3"], 2,
     ["--ratio is not a flag of synthblend-export", "synthblend-blend"]),
    ("sample", [*SAMPLE[:1], "--export_dir={export}", *SAMPLE[1:]], 2, ["give one of --model_dir", "--export_dir"]),
    ("sample", ["--export_dir={export}", *SAMPLE[1:], "--use_ema=false"], 2,
     ["--use_ema=False applies to --model_dir"]),
    ("sample", ["--model_dir={ring}", *SAMPLE[1:], "--class_balance=uniform"], 2,
     ["--class_balance=uniform needs a conditional model"]),
    ("evaluate", ["--model_dir={model}", "--output=x.npz"], 2, ["--output is not a flag of synthblend-evaluate"]),
    ("train", ["--dataset=npz:{files}/truncated.npz", *TRAIN[2:], "--model=gan"], 1,
     ["truncated.npz", "cannot be read as a NumPy .npz"]),
    ("train", ["--dataset=npz:{files}/text.npz", *TRAIN[2:], "--model=gan"], 1,
     ["text.npz", "cannot be read as a NumPy .npz"]),
    ("train", ["--dataset=npz:{files}/no_x.npz", *TRAIN[2:], "--model=gan"], 1, ["no_x.npz", "no array 'x'"]),
    ("train", ["--dataset=images:{files}/no_images", *TRAIN[2:], "--model=dcgan"], 2,
     ["no_images", "no image files", ".png"]),
    ("train", ["--dataset=images:{files}/mixed", *TRAIN[2:], "--model=dcgan"], 1, ["mixed sizes", "--image_size"]),
    ("train", ["--model=dcgan", "--dataset=shapes", "--model_dir={model}", *TINY], 2,
     ["--model_dir={model}", "conditional=True there, False now"]),
    ("train", ["--model=gan", "--dataset=ring", "--model_dir={files}/text.npz", *TINY], 2,
     ["text.npz", "is a file"]),
    ("train", [*TRAIN, "--model=vae", "--eval_split=validation"], 2,
     ["--eval_split=validation", "accepted: train, test"]),
    ("train", ["--flagfile={files}/no_such.cfg"], 2, ["no_such.cfg", "Unable to open flagfile"]),
    ("train", ["--flagfile={files}/circular.cfg", *TRAIN[1:]], 2, ["circular.cfg reads itself again"]),
    ("train", ["--flagfile={files}/binary.cfg", *TRAIN[1:]], 2, ["--flagfile is not UTF-8", "byte 0"]),
    # -- sample --------------------------------------------------------------------------------
    ("sample", ["--model_dir={model}", "--output={out}/s.npz"], 2, ["--num_samples is required"]),
    ("sample", [*SAMPLE[:2], "--num_samples=ten"], 2, ["--num_samples=ten", "int"]),
    ("sample", [*SAMPLE[:2], "--num_samples=0"], 2, ["--num_samples=0", "range [1, 2147483647]"]),
    ("sample", [*SAMPLE, "--export_dir={export}"], 2, ["give one of --model_dir", "--export_dir"]),
    ("sample", ["--model_dir=/no/such/run", *SAMPLE[1:]], 2, ["--model_dir=/no/such/run", "does not exist"]),
    ("sample", ["--model_dir={files}", *SAMPLE[1:]], 2, ["--model_dir=", "holds no config.json"]),
    ("sample", ["--model_dir={files}/broken_run", *SAMPLE[1:]], 2, ["broken_run", "cannot be read"]),
    ("sample", ["--export_dir={files}/no_images", *SAMPLE[1:]], 2, ["no_images", "holds no exported version"]),
    ("sample", ["--export_dir={files}/text.npz", *SAMPLE[1:]], 2,
     ["--export_dir=", "text.npz is a file", "export folder"]),
    ("sample", [*SAMPLE, "--classes=4"], 2, ["'4'", "accepted: 0..3"]),
    ("sample", [*SAMPLE, "--classes=hexagon"], 2, ["'hexagon'", "circle, square, triangle, cross"]),
    ("sample", ["--model_dir={ring}", *SAMPLE[1:], "--classes=0"], 2,
     ["--classes=0", "--model_dir={ring}", "without --conditional"]),
    ("sample", ["--export_dir={files}/corrupt_export", *SAMPLE[1:]], 1,
     ["corrupt_export/1", "cannot be loaded as a SavedModel"]),
    ("sample", ["--export_dir={files}/export_without_variables", *SAMPLE[1:]], 1,
     ["export_without_variables/1", "cannot be loaded as a SavedModel"]),
    ("sample", [*SAMPLE[:1], "--output={out}", "--format=npz", "--overwrite", *SAMPLE[2:]], 2,
     ["--output={out} is a folder", "replaces only a file"]),
    ("sample", [*SAMPLE[:1], "--output={out}/existing.npz", "--format=png", "--overwrite", *SAMPLE[2:]], 2,
     ["existing.npz is a file", "replaces only a folder of PNGs"]),
    ("sample", [*SAMPLE[:1], "--output={files}/no_images", "--overwrite", *SAMPLE[2:]], 2,
     ["readme.txt", "replaces only a folder of samples"]),
    ("sample", [*SAMPLE[:1], "--output={out}/missing/s.npz", *SAMPLE[2:]], 2, ["missing", "does not exist"]),
    ("sample", [*SAMPLE[:1], "--output={out}/existing.npz", *SAMPLE[2:]], 2, ["existing.npz", "--overwrite"]),
    ("sample", [*SAMPLE[:1], "--output={out}/s.csv", *SAMPLE[2:]], 2, ["s.csv", "npz, tfrecord or png"]),
    ("sample", [*SAMPLE, "--format=jpeg"], 2, ["--format=jpeg", "npz|png|tfrecord"]),
    ("sample", [*SAMPLE, "--class_balance=skewed"], 2, ["--class_balance=skewed", "real|uniform"]),
    ("sample", ["--model_dir={ring}", "--output={out}/pngs", "--num_samples=5"], 2, ["png", "(2,)", "npz"]),
    # -- export --------------------------------------------------------------------------------
    ("export", ["--model_dir={model}"], 2, ["--export_dir is required"]),
    ("export", ["--model_dir=/no/such/run", "--export_dir={fresh}"], 2, ["/no/such/run", "does not exist"]),
    ("export", ["--model_dir={files}/no_checkpoint", "--export_dir={fresh}"], 2, ["no_checkpoint", "no checkpoint"]),
    ("export", ["--model_dir={model}", "--export_dir={files}/text.npz"], 2, ["text.npz", "is a file"]),
    ("export", ["--model_dir={model}", "--export_dir={fresh}", "--max_samples=0"], 2,
     ["--max_samples=0", "range [1, 65536]"]),
    # -- evaluate ------------------------------------------------------------------------------
    ("evaluate", ["--model_dir={model}", "--num_samples=3"], 2, ["--num_samples=3", "at least 10"]),
    ("evaluate", ["--model_dir={model}", "--real_examples=5"], 2, ["--real_examples=5", "range [10, 2147483647]"]),
    ("evaluate", ["--model_dir={model}", "--seed=-1"], 2, ["--seed=-1", "range [0, 2147483647]"]),
    ("evaluate", ["--export_dir=/no/such/export"], 2, ["/no/such/export", "does not exist"]),
    ("evaluate", ["--export_dir={files}/fake_export"], 2, ["fake_export", "not an export of this tool"]),
    ("evaluate", ["--model_dir={model}", "--report_dir={files}/text.npz"], 2, ["text.npz", "is a file"]),
    ("evaluate", ["--model_dir={model}", "--cache_dir={files}/text.npz"], 2, ["--cache_dir=", "is a file"]),
    ("evaluate", ["--export_dir={files}/corrupt_export"], 1, ["corrupt_export", "cannot be loaded as a SavedModel"]),
    # -- blend ---------------------------------------------------------------------------------
    ("blend", [*BLEND, "--ratio=1.5"], 2, ["--ratio=1.5", "[0, 1]"]),
    ("blend", [*BLEND, "--ratio=-0.2"], 2, ["--ratio=-0.2", "[0, 1]"]),
    ("blend", [*BLEND, "--ratio=half"], 2, ["--ratio=half", "float"]),
    ("blend", [*BLEND, "--method=average"], 2, ["--method=average", "mix|interpolate"]),
    ("blend", BLEND[1:], 2, ["--dataset is required"]),
    ("blend", [*BLEND[:3], "--num_examples=-4"], 2, ["--num_examples=-4", "range [1, 2147483647]"]),
    ("blend", [*BLEND[:2], "--output={out}/blend.csv", BLEND[3]], 2, ["blend.csv", ".npz"]),
    ("blend", [*BLEND[:2], "--output={out}/existing.npz", BLEND[3]], 2, ["existing.npz", "--overwrite"]),
    ("blend", [*BLEND, "--image_size=32"], 2, ["(32, 32, 1)", "(28, 28, 1)"]),
    ("blend", ["--dataset=shapez", *BLEND[1:]], 2, ["'shapez'", "shapes"]),
    ("blend", ["--dataset=npz:{files}/no_x.npz", *BLEND[1:]], 1, ["no_x.npz", "no array 'x'"]),
    ("blend", ["--dataset=ring", "--model_dir={ring}", *BLEND[2:]], 2, ["--model_dir={ring}", "without --conditional"]),
    ("blend", ["--dataset=shapes", "--export_dir={files}/corrupt_export", *BLEND[2:]], 1,
     ["corrupt_export", "cannot be loaded as a SavedModel"]),
    # -- utility -------------------------------------------------------------------------------
    ("utility", ["--dataset=shapes", "--model_dir={model}", "--ratios=0,1.2"], 2, ["1.2", "[0, 1)"]),
    ("utility", ["--dataset=shapes", "--model_dir={model}", "--ratios=-0.5"], 2, ["-0.5", "[0, 1)"]),
    ("utility", ["--dataset=shapes", "--model_dir={model}", "--ratios=a,b"], 2, ["--ratios=a,b", "[0, 1)"]),
    ("utility", ["--dataset=shapes", "--model_dir={model}", "--repeats=0"], 2,
     ["--repeats=0", "range [1, 2147483647]"]),
    ("utility", ["--dataset=ring", "--model_dir={ring}"], 2, ["--model_dir={ring}", "without --conditional"]),
    # == numbers against their meaningful range, where they are read ===========================
    # -- train: nan and inf are never a setting; 0 is not a learning rate; Adam's betas stay < 1
    ("train", [*TRAIN, "--seed=-1"], 2, ["--seed=-1", "range [0, 2147483647]"]),
    ("train", [*TRAIN, "--seed=2147483648"], 2, ["--seed=2147483648", "range [0, 2147483647]"]),
    ("train", [*TRAIN, "--ema_decay=nan"], 2, ["--ema_decay=nan", "finite number in [0, 0.99999]"]),
    ("train", [*TRAIN, "--ema_decay=-inf"], 2, ["--ema_decay=-inf", "finite number in [0, 0.99999]"]),
    ("train", [*TRAIN, "--generator_learning_rate=0"], 2, ["--generator_learning_rate=0", "finite number > 0"]),
    ("train", [*TRAIN, "--discriminator_learning_rate=inf"], 2,
     ["--discriminator_learning_rate=inf", "finite number > 0"]),
    ("train", [*TRAIN, "--model=vae", "--learning_rate=0"], 2, ["--learning_rate=0", "finite number > 0"]),
    ("train", [*TRAIN, "--model=vae", "--learning_rate=nan"], 2, ["--learning_rate=nan", "> 0"]),
    ("train", [*TRAIN, "--beta_2=1"], 2, ["--beta_2=1", "finite number in [0, 1)"]),
    ("train", [*TRAIN, "--beta_1=nan"], 2, ["--beta_1=nan", "[0, 1)"]),
    ("train", [*TRAIN, "--beta_1=-0.1"], 2, ["--beta_1=-0.1", "[0, 1)"]),
    ("train", [*TRAIN, "--loss=wasserstein_gp", "--gradient_penalty_weight=0"], 2,
     ["--gradient_penalty_weight=0", "> 0"]),
    ("train", [*TRAIN, "--loss=wasserstein_gp", "--gradient_penalty_weight=inf"], 2,
     ["--gradient_penalty_weight=inf", "> 0"]),
    ("train", [*TRAIN, "--gumbel_temperature=-0.5"], 2, ["--gumbel_temperature=-0.5", ">= 0"]),
    ("train", [*TRAIN, "--classifier_weight=nan"], 2, ["--classifier_weight=nan", ">= 0"]),
    ("train", [*TRAIN, "--model=vae", "--beta=inf"], 2, ["--beta=inf", "finite number >= 0"]),
    ("train", [*TRAIN, "--model=infogan", "--categorical_weight=-1"], 2, ["--categorical_weight=-1", ">= 0"]),
    ("train", [*TRAIN, "--model=infogan", "--continuous_weight=nan"], 2, ["--continuous_weight=nan", ">= 0"]),
    ("train", [*TRAIN, "--model=infogan", "--clustering_weight=inf"], 2, ["--clustering_weight=inf", ">= 0"]),
    ("train", [*TRAIN, "--shuffle_buffer=100000000"], 2, ["--shuffle_buffer=100000000", "range [1, 10000000]"]),
    ("train", [*TRAIN, "--batch_size=1000000"], 2, ["--batch_size=1000000", "range [1, 65536]"]),
    ("train", [*TRAIN, "--train_steps=99999999999"], 2, ["--train_steps=99999999999", "2147483647"]),
    ("train", [*TRAIN, "--log_every=0"], 2, ["--log_every=0", "range [1, 2147483647]"]),
    ("train", [*TRAIN, "--keep_checkpoints=0"], 2, ["--keep_checkpoints=0", "range [1, 2147483647]"]),
    ("train", [*TRAIN, "--nan_policy=rollback", "--max_rollbacks=-1"], 2, ["--max_rollbacks=-1", "range [0,"]),
    ("train", [*TRAIN, "--latent_dim=100000"], 2, ["--latent_dim=100000", "range [1, 4096]"]),
    ("train", [*TRAIN, "--width=0"], 2, ["--width=0", "range [1, 4096]"]),
    ("train", [*TRAIN, "--depth=1000"], 2, ["--depth=1000", "range [1, 64]"]),
    ("train", [*TRAIN, "--model=infogan", "--categories=5000"], 2, ["--categories=5000", "range [2, 1000]"]),
    ("train", [*TRAIN, "--image_size=nan"], 2, ["--image_size=nan", "int"]),
    # -- sample, export, evaluate, blend, utility
    ("sample", [*SAMPLE[:2], "--num_samples=99999999999"], 2, ["--num_samples=99999999999", "2147483647"]),
    ("sample", [*SAMPLE, "--chunk_size=0"], 2, ["--chunk_size=0", "range [1, 65536]"]),
    ("sample", [*SAMPLE, "--chunk_size=10000000"], 2, ["--chunk_size=10000000", "range [1, 65536]"]),
    ("sample", [*SAMPLE, "--seed=2147483648"], 2, ["--seed=2147483648", "range [0, 2147483647]"]),
    ("export", ["--model_dir={model}", "--export_dir={fresh}", "--max_samples=100000"], 2,
     ["--max_samples=100000", "range [1, 65536]"]),
    ("evaluate", ["--model_dir={model}", "--num_samples=0"], 2, ["--num_samples=0", "range [1, 2147483647]"]),
    ("evaluate", ["--model_dir={model}", "--real_examples=99999999999"], 2,
     ["--real_examples=99999999999", "range [10, 2147483647]"]),
    ("evaluate", ["--model_dir={model}", "--seed=99999999999"], 2, ["--seed=99999999999", "2147483647"]),
    ("blend", [*BLEND, "--ratio=nan"], 2, ["--ratio=nan", "[0, 1]"]),
    ("blend", [*BLEND, "--ratio=inf"], 2, ["--ratio=inf", "[0, 1]"]),
    ("blend", [*BLEND[:3], "--num_examples=0"], 2, ["--num_examples=0", "range [1, 2147483647]"]),
    ("blend", [*BLEND, "--seed=-3"], 2, ["--seed=-3", "range [0, 2147483647]"]),
    ("utility", ["--dataset=shapes", "--model_dir={model}", "--ratios=nan"], 2,
     ["--ratios=nan", "nan is not a share", "[0, 1)"]),
    ("utility", ["--dataset=shapes", "--model_dir={model}", "--ratios=0,inf"], 2, ["--ratios=0,inf", "[0, 1)"]),
    ("utility", ["--dataset=shapes", "--model_dir={model}", "--classifier_steps=0"], 2,
     ["--classifier_steps=0", "range [1, 2147483647]"]),
    ("utility", ["--dataset=shapes", "--model_dir={model}", "--batch_size=0"], 2, ["--batch_size=0", "range [1,"]),
    # == lists with empty items, empty strings, and strings of the wrong form ====================
    ("sample", [*SAMPLE, "--classes=0,,1"], 2, ["--classes=0,,1", "an empty class between commas"]),
    ("sample", [*SAMPLE, "--classes="], 2, ["--classes=", "names no class"]),
    ("sample", [*SAMPLE, "--classes=0,0"], 2, ["--classes=0,0", "'0' is given twice"]),
    ("sample", [*SAMPLE, "--classes=\u00b2"], 2, ["'\u00b2'", "accepted: 0..3"]),
    ("sample", [*SAMPLE, "--classes=\u0663"], 2, ["'\u0663'", "accepted: 0..3"]),
    ("sample", [*SAMPLE, "--classes=--1"], 2, ["'--1'", "accepted: 0..3"]),
    ("sample", [*SAMPLE, "--classes=" + "0" * 5000], 2, ["is not a class of this model", "accepted: 0..3"]),
    ("utility", ["--dataset=shapes", "--model_dir={model}", "--ratios=0,,0.5"], 2,
     ["--ratios=0,,0.5", "an empty share between commas"]),
    ("utility", ["--dataset=shapes", "--model_dir={model}", "--ratios="], 2, ["--ratios=", "names no share"]),
    ("utility", ["--dataset=shapes", "--model_dir={model}", "--ratios=0.5,0.5"], 2,
     ["--ratios=0.5,0.5", "'0.5' is given twice"]),
    ("train", [*TRAIN[:2], "--model_dir=", *TINY], 2, ["--model_dir=", "empty"]),
    ("train", ["--model=gan", "--dataset=", *TRAIN[2:]], 2, ["--dataset=", "empty; give a data source"]),
    ("train", [*TRAIN, "--split="], 2, ["--split=", "empty"]),
    ("train", [*TRAIN, "--model=vae", "--eval_split= "], 2, ["--eval_split= ", "empty"]),
    ("train", ["--model=gan", "--dataset=csv:{files}/table.csv", *TRAIN[2:], "--schema="], 2, ["--schema=", "empty"]),
    ("train", [*TRAIN, "--diffaugment=,"], 2, ["--diffaugment=,", "an empty policy"]),
    ("train", ["--model=dcgan", "--dataset=shapes", *TRAIN[2:], "--diffaugment=color,color"], 2,
     ["--diffaugment=color,color", "'color' is given twice"]),
    ("train", ["--model=infogan", "--dataset=shapes", *TRAIN[2:], "--code_invariance=centre,,rotation"], 2,
     ["--code_invariance=centre,,rotation", "an empty policy"]),
    ("sample", [*SAMPLE[:1], "--output=", *SAMPLE[2:]], 2, ["--output=", "empty"]),
    ("sample", ["--model_dir=", "--export_dir={export}", *SAMPLE[1:]], 2, ["--model_dir=", "empty"]),
    ("export", ["--model_dir={model}", "--export_dir={fresh}", "--serving_name=my model"], 2,
     ["--serving_name=my model", "'my model' is not a model name"]),
    ("export", ["--model_dir={model}", "--export_dir={fresh}", "--serving_name=../shapes"], 2,
     ["--serving_name=../shapes", "not a model name"]),
    ("export", ["--model_dir={model}", "--export_dir={fresh}", "--serving_name="], 2, ["--serving_name=", "empty"]),
    ("export", ["--model_dir={model}", "--export_dir={fresh}/my export"], 2,
     ["the folder's name 'my export'", "pass --serving_name"]),
    ("export", ["--model_dir={model}", "--export_dir={fresh}", "--serving_base_path=models/shapes"], 2,
     ["--serving_base_path=models/shapes", "an absolute path", "URI"]),
    ("export", ["--model_dir={model}", "--export_dir={fresh}", "--serving_base_path="], 2,
     ["--serving_base_path=", "empty"]),
    ("evaluate", ["--model_dir={model}", "--report_dir="], 2, ["--report_dir=", "empty"]),
    ("evaluate", ["--model_dir={model}", "--inception_weights="], 2, ["--inception_weights=", "empty"]),
    ("evaluate", ["--model_dir={model}", "--cache_dir= "], 2, ["--cache_dir= ", "empty"]),
    ("blend", [*BLEND[:2], "--output=", BLEND[3]], 2, ["--output=", "empty"]),
    ("utility", ["--dataset=shapes", "--model_dir={model}", "--report_dir="], 2, ["--report_dir=", "empty"]),
    # == flags given where they would change nothing ============================================
    ("train", [*TRAIN, "--eval_split=test"], 2, ["--eval_split=test changes nothing", "--model=gan", "vae"]),
    ("train", [*TRAIN, "--model=vae", "--eval_split=train"], 2, ["--eval_split=train is the split trained on"]),
    ("train", [*TRAIN, "--gradient_penalty_weight=5"], 2,
     ["--gradient_penalty_weight=5 applies to --loss=wasserstein_gp only", "--loss=hinge"]),
    ("train", [*TRAIN, "--classifier_weight=0"], 2, ["--classifier_weight=0 applies to conditional models only"]),
    ("train", ["--model=infogan", "--dataset=shapes", *TRAIN[2:], "--clustering_weight=0"], 2,
     ["--clustering_weight=0 applies with --code_invariance only"]),
    ("train", [*TRAIN, "--gumbel_temperature=0.5"], 2, ["--gumbel_temperature=0.5 applies to tables", "(2,)"]),
    ("train", ["--model=gan", "--dataset=npz:{files}/whole.npz", *TRAIN[2:], "--split=test"], 2,
     ["--split=test", "is one file, so its only split is train"]),
    ("train", ["--dataset=images:{files}/mixed", *TRAIN[2:], "--model=dcgan", "--split=test[:50%]"], 2,
     ["--split=test[:50%]", "is one folder, so its only split is train"]),
    ("train", ["--model=gan", "--dataset=csv:{files}/table.csv", *TRAIN[2:], "--split=validation"], 2,
     ["--split=validation", "is one file, so its only split is train"]),
    ("train", ["--model=gan", "--dataset=npz:{files}/whole.npz", *TRAIN[2:], "--split=train[70:]"], 2,
     ["split 'train[70:]'", "holds no examples (the split has 64)"]),
    ("train", ["--model=gan", "--dataset=csv:{files}/table.csv", *TRAIN[2:], "--image_size=8"], 2,
     ["--image_size=8 applies to images", "table rows"]),
    ("train", ["--model=vae", "--dataset=shapes", *TRAIN[2:], "--depth=2"], 2,
     ["--depth=2 applies to vectors", "convolutions"]),
    ("sample", [*SAMPLE, "--use_ema=true"], 2, ["--use_ema=True changes nothing", "--ema_decay=0"]),
    ("sample", ["--export_dir={export}", *SAMPLE[1:], "--chunk_size=64"], 2,
     ["--chunk_size=64 is more than the 32 samples one request", "max_samples"]),
    ("sample", [*SAMPLE, "--classes=circle", "--class_balance=uniform"], 2,
     ["--class_balance=uniform changes nothing", "names one class"]),
    ("evaluate", ["--model_dir={unlabelled}"], 2, ["--cache_dir=", "changes nothing", "unlabelled data"]),
    ("export", ["--model_dir={model}", "--export_dir={fresh}", "--use_ema=false"], 2,
     ["--use_ema=False changes nothing", "no moving-average weights"]),
    ("evaluate", ["--model_dir={model}", "--use_ema=true"], 2, ["--use_ema=True changes nothing"]),
    ("blend", [*BLEND, "--method=interpolate", "--class_balance=uniform"], 2,
     ["--class_balance=uniform changes nothing with --method=interpolate"]),
    ("blend", ["--dataset=ring", "--model_dir={ring}", *BLEND[2:], "--image_size=8"], 2,
     ["--image_size=8 applies to images", "'ring' holds vectors"]),
    ("blend", ["--dataset=npz:{files}/whole.npz", *BLEND[1:], "--split=test"], 2,
     ["--split=test", "only split is train"]),
    ("utility", ["--dataset=ring", "--model_dir={ring}", "--image_size=8"], 2,
     ["--image_size=8 applies to images", "'ring' holds vectors"]),
    ("utility", ["--dataset=npz:{files}/whole.npz", "--model_dir={model}", "--split=test"], 2,
     ["--split=test", "only split is train"]),
    # == what parsers of user files read =========================================================
    ("train", ["--model=gan", "--dataset=csv:{files}/table.csv", *TRAIN[2:], "--schema={files}/integer_age.json"],
     1,
     ["line 3, column 'age'", "'\u00b2' is not an integer of ASCII digits"]),
    ("train", ["--model=gan", "--dataset=csv:{files}/table.csv", *TRAIN[2:], "--schema={files}/deep.json"], 2,
     ["deep.json nests too deeply"]),
    ("train", ["--model=gan", "--dataset=csv:{files}/long_cell.csv", *TRAIN[2:]], 1,
     ["long_cell.csv: line 2 cannot be read as CSV"]),
    ("train", ["--model=gan", "--dataset=csv:{files}/huge.csv", *TRAIN[2:]], 1,
     ["line 3, column 'a': 1e39 is beyond the float32 range"]),
    ("train", ["--model=gan", "--dataset=npz:{files}/objects.npz", *TRAIN[2:]], 1,
     ["objects.npz: holds Python objects"]),
    ("train", ["--model=gan", "--dataset=npz:{files}/many_classes.npz", *TRAIN[2:]], 1,
     ["y holds label 1000000000", "at most 1000 classes"]),
    ("train", ["--model=gan", "--dataset=npz:{files}/zero_width.npz", *TRAIN[2:]], 1,
     ["x has shape (5, 0)", "at least one value"]),
    ("train", ["--model=gan", "--dataset=npz:{files}/float64_huge.npz", *TRAIN[2:]], 1,
     ["1e+300", "beyond the float32 range"]),
    ("sample", ["--export_dir={files}/superscript_versions", *SAMPLE[1:]], 2,
     ["superscript_versions holds no exported version"]),
]


def fingerprint(*directories):
    """Every file and folder below `directories`: size, modification time and a hash of its bytes."""
    result = {}
    for directory in directories:
        for folder, subfolders, files in os.walk(directory):
            for name in subfolders:
                result[os.path.join(folder, name)] = "folder"
            for name in files:
                path = os.path.join(folder, name)
                with open(path, "rb") as file:
                    digest = hashlib.sha256(file.read()).hexdigest()
                status = os.stat(path)
                result[path] = (status.st_size, status.st_mtime_ns, digest)
    return result


@pytest.fixture(scope="module")
def ring_run(tmp_path_factory):
    """An unconditional gan on the 2-D ring, trained two steps."""
    model_dir = tmp_path_factory.mktemp("ring") / "run"
    assert run_train("--model=gan", "--dataset=ring", f"--model_dir={model_dir}", *TINY)[0] == 0
    return model_dir


@pytest.fixture(scope="module")
def places(tmp_path_factory, conditional_export, ring_run):
    """What the table's placeholders name; the files are made once and only read."""
    model_dir, export_dir = conditional_export
    files = tmp_path_factory.mktemp("files")
    np.savez(files / "no_x.npz", images=np.zeros((4, 28, 28), np.uint8))
    np.savez(files / "whole.npz", x=np.zeros((64, 28, 28), np.uint8))
    (files / "truncated.npz").write_bytes((files / "whole.npz").read_bytes()[:300])
    (files / "text.npz").write_text("x,y\n1,2\n")
    (files / "circular.cfg").write_text(f"--flagfile={files / 'circular.cfg'}\n--model=gan\n")
    (files / "binary.cfg").write_bytes(b"\xff\xfe--model=gan\n")
    np.savez(files / "objects.npz", x=np.array([{"a": 1}, None], dtype=object))
    np.savez(files / "many_classes.npz", x=np.zeros((2, 2), np.float32), y=np.array([0, 10**9]))
    np.savez(files / "zero_width.npz", x=np.zeros((5, 0), np.float32))
    np.savez(files / "float64_huge.npz", x=np.array([[1.0, 1e300], [2.0, 3.0]]))
    (files / "table.csv").write_text("age,city,member\n34,Paris,yes\n\u00b2,Lyon,no\n51,Nice,yes\n40,Lyon,no\n",
                                     encoding="utf-8")
    (files / "integer_age.json").write_text('{"columns": {"age": "integer"}}')
    (files / "deep.json").write_text("[" * 100000 + "]" * 100000)
    (files / "long_cell.csv").write_text('a,b\n1,"' + "x" * 200000 + "\n")
    (files / "huge.csv").write_text("a,b\n1,2.5\n1e39,3.5\n2,4.5\n")
    (files / "superscript_versions" / "\u00b2").mkdir(parents=True)
    (files / "no_images").mkdir()
    (files / "no_images" / "readme.txt").write_text("no pictures here")
    mixed = files / "mixed"
    mixed.mkdir()
    (mixed / "a.png").write_bytes(tf.io.encode_png(np.zeros((28, 28, 1), np.uint8)).numpy())
    (mixed / "b.png").write_bytes(tf.io.encode_png(np.zeros((30, 30, 1), np.uint8)).numpy())
    (files / "broken_run").mkdir()
    (files / "broken_run" / "config.json").write_text('{"model": "gan", "config": ')
    (files / "no_checkpoint").mkdir()
    shutil.copy(model_dir / "config.json", files / "no_checkpoint" / "config.json")
    (files / "fake_export" / "1").mkdir(parents=True)
    (files / "fake_export" / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    shutil.copytree(export_dir / "1", files / "corrupt_export" / "1")
    (files / "corrupt_export" / "1" / "saved_model.pb").write_bytes(b"not a SavedModel")
    shutil.copytree(export_dir / "1", files / "export_without_variables" / "1")
    shutil.rmtree(files / "export_without_variables" / "1" / "variables")
    # The ring run as if trained on data without labels.
    unlabelled = files / "unlabelled_run"
    shutil.copytree(ring_run, unlabelled)
    record = json.loads((unlabelled / "config.json").read_text())
    record["data_spec"].update(num_classes=0, class_names=[])
    (unlabelled / "config.json").write_text(json.dumps(record))
    out = tmp_path_factory.mktemp("out")
    (out / "existing.npz").write_bytes(b"keep me")
    return {"model": model_dir, "export": export_dir, "ring": ring_run, "files": files, "out": out,
            "unlabelled": unlabelled}


@pytest.mark.parametrize("tool, argv, code, words", BAD_INPUTS, ids=lambda v: v if isinstance(v, str) else None)
def test_bad_input_is_one_line_naming_the_value_and_loses_nothing(places, tmp_path, tool, argv, code, words):
    argv = [flag.format(**places, fresh=tmp_path / "new") for flag in argv]
    watched = [places[key] for key in ("model", "export", "ring", "files", "out")]
    before = fingerprint(*watched)
    cache = [f"--cache_dir={tmp_path / 'cache'}"] if tool == "evaluate" else []
    exit_code, _, err = run_tool(TOOLS[tool], *cache, *argv)
    lines = err.strip().splitlines()
    assert exit_code == code, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "ERROR" not in lines[0], err
    for word in words:
        assert word.format(**places) in lines[0], lines[0]
    assert fingerprint(*watched) == before
    assert not os.path.exists(tmp_path / "new"), "a failed command left a new directory behind"


def test_the_table_covers_every_command():
    assert len(BAD_INPUTS) >= 30
    assert {tool for tool, *_ in BAD_INPUTS} == set(TOOLS)


def test_running_out_of_memory_is_one_line_and_verbose_shows_the_traceback():
    def main(argv):
        raise MemoryError("Unable to allocate 182. TiB for an array with shape (20000, 100000, 100000)")

    code, _, err = run_tool(main)
    assert code == 1
    assert err.strip().splitlines() == [
        "error: out of memory (Unable to allocate 182. TiB for an array with shape (20000, 100000, 100000)); "
        "use less data, a smaller --image_size or --batch_size"
    ]
    with pytest.raises(MemoryError):
        run_tool(main, "--verbose")


def test_a_table_read_with_a_models_encoder_names_a_label_it_never_saw(tmp_path):
    """blend, utility and evaluate read a table with the encoder of the model they measure."""
    from synthblend.datasets import tabular
    from synthblend.zoo.registry import DataError

    (tmp_path / "train.csv").write_text("age,plan\n30,basic\n40,plus\n50,pro\n")
    (tmp_path / "other.csv").write_text("age,plan\n30,basic\n40,gold\n")
    _, encoder = tabular.load_csv(str(tmp_path / "train.csv"), tabular.Options(label="plan"))
    with pytest.raises(DataError, match="label column 'plan' holds 'gold', a class the model was not trained on; "
                                        "accepted: basic, plus, pro"):
        tabular.load_csv(str(tmp_path / "other.csv"), encoder)


def run_process(tool, *argv):
    """The command as a user runs it: its own process, without the suite's TF_CPP_MIN_LOG_LEVEL."""
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    return subprocess.run([sys.executable, "-m", "synthblend", tool, *argv], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, env=env)


@pytest.mark.parametrize(
    "tool, argv, code, line",
    [
        ("sample", ["--model_dir={model}", "--output={out}/existing.npz", "--num_samples=5"], 2,
         "error: --output={out}/existing.npz exists; pass --overwrite to replace it"),
        ("blend", [*BLEND, "--ratio=2"], 2, "error: --ratio=2.0 must lie in [0, 1] (the share of synthetic data)"),
        ("evaluate", ["--model_dir={model}", "--num_sample=40"], 2,
         "error: unknown flag --num_sample for synthblend-evaluate; did you mean --num_samples?"),
    ],
    ids=["sample", "blend", "evaluate"],
)
def test_as_a_process_the_exit_status_is_real_and_there_is_no_traceback(places, tool, argv, code, line):
    """TensorFlow's import makes each of these take about 5 s."""
    watched = [places[key] for key in ("model", "export", "out")]
    before = fingerprint(*watched)
    result = run_process(tool, *[flag.format(**places) for flag in argv])
    assert result.returncode == code
    assert result.stderr.strip().splitlines()[0].startswith(line.format(**places)), result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert fingerprint(*watched) == before


# -- parser fuzz --------------------------------------------------------------------------------
# Deterministic contents (seed FUZZ_SEED) for every parser of a user's file: CSV tables, schema
# JSON, npz archives, image folders and the TF_CONFIG variable. Each goes through the train
# command in this process and must end in exit status 1 or 2 and one line, never a traceback.
# A content that happens to parse would train; the flags each parser's data goes in with make
# the run stop right after the data is read (`--image_size` for a table or vectors, an image
# size dcgan does not take), so every case fails fast. TF_CONFIG has no such stop: its contents
# are all invalid (the mutated one is invalid in three ways, and a mutation changes one byte).
FUZZ_SEED = 1729
CSV_TABLE = ("age,income,city,member,churn\n" + "".join(
    f"{20 + 3 * i},{30000 + 1234.5 * i:.1f},{('Paris', 'Lyon', 'Nice')[i % 3]},{('no', 'yes')[i % 2]},"
    f"{('true', 'false')[i % 3 > 0]}\n" for i in range(12))).encode()
SCHEMA = b'{"columns": {"age": "integer", "city": "categorical"}, "label": "churn", "missing": "impute"}'
SPECIALS = [b"\x00", b'"', b",", b"\n", b"\r", "\u00b2".encode(), "\u0663".encode(), b"\xff\xfe", b"1e400",
            b"99999999999999999999999", b"\xef\xbb\xbf", b"NaN", b"-", b"{", b"]"]


def mutations(base: bytes, count: int, rng) -> list[bytes]:
    """`count` mutations of `base`: truncations, bytes replaced by random ones, special
    sequences inserted, and lines dropped or repeated, in turn."""
    result = []
    for index in range(count):
        kind = index % 4
        if kind == 0:
            result.append(base[:rng.randrange(1, len(base))])
        elif kind == 1:
            data = bytearray(base)
            for _ in range(rng.randrange(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            result.append(bytes(data))
        elif kind == 2:
            at = rng.randrange(len(base))
            result.append(base[:at] + rng.choice(SPECIALS) + base[at:])
        else:
            lines = base.split(b"\n")
            at = rng.randrange(len(lines))
            lines[at:at + 1] = [] if rng.random() < 0.5 else [lines[at]] * 2
            result.append(b"\n".join(lines))
    return result


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def png(shape, dtype=np.uint8) -> bytes:
    return tf.io.encode_png(np.full(shape, 7, dtype)).numpy()


def csv_contents(rng):
    x = "\u00b2\u0663\uff11"
    return [
        ("empty", b""), ("header_only", CSV_TABLE.split(b"\n")[0] + b"\n"), ("bom", b"\xef\xbb\xbf" + CSV_TABLE),
        ("nul_cells", CSV_TABLE.replace(b"Paris", b"Pa\x00ris")), ("nul_header", b"ag\x00e,b\n1,2\n3,4\n"),
        ("latin1", CSV_TABLE.replace(b"Nice", "N\u00eemes".encode("latin-1"))),
        ("utf16", CSV_TABLE.decode().encode("utf-16")),
        ("semicolons", CSV_TABLE.replace(b",", b";")), ("tabs", CSV_TABLE.replace(b",", b"\t")),
        ("unicode_digits", f"a,b\n1,x\n{x[0]},y\n{x[1]},x\n{x[2]},y\n".encode()),
        ("huge_numbers", b"a,b,c\n1e400,99999999999999999999999,-1e39\n2,3,4\n5,6,7\n"),
        ("duplicate_header", b"a,b,a\n1,2,3\n4,5,6\n"), ("ragged_long", CSV_TABLE + b"1,2,3,4,5,6\n"),
        ("ragged_short", CSV_TABLE + b"1,2\n"), ("unclosed_quote", b'a,b\n1,"x\n2,y\n'),
        ("field_limit", b'a,b\n1,"' + b"x" * 140000 + b'"\n'), ("blank_lines", b"\n\n  \n"),
        ("empty_header_name", b"a,,c\n1,2,3\n"), ("all_missing", b"a,b\n1,NA\n2,\n3,?\n"),
        ("many_categories", b"a,b\n" + b"".join(b"%d,c%d\n" % (i % 2, i) for i in range(600))),
        ("odd_line_ends", CSV_TABLE.replace(b"\n", b"\r").replace(b"Lyon", "Ly\u2028on\x0c".encode())),
        ("one_row", b"a,b\n1,2\n"), ("one_column", b"a\n1\n2\n"), ("random_bytes", rng.randbytes(400)),
        ("deep_quotes", b'"' * 1001 + b"\n1\n"), ("separators", b"1_000,2\n3_0,4\n5,6\n"),
        *((f"mutated_{index:02d}", content) for index, content in enumerate(mutations(CSV_TABLE, 12, rng))),
    ]


def schema_contents(rng):
    return [
        ("empty", b""), ("null", b"null"), ("list", b"[]"), ("number", b"42"), ("string", b'"text"'),
        ("open_brace", b"{"), ("columns_list", b'{"columns": []}'), ("unknown_kind", b'{"columns": {"age": "float"}}'),
        ("kind_number", b'{"columns": {"age": 3}}'), ("kind_list", b'{"columns": {"age": ["integer"]}}'),
        ("kind_object", b'{"columns": {"age": {"kind": "integer"}}}'),
        ("no_such_column", b'{"columns": {"height": "integer"}}'), ("label_number", b'{"label": 5}'),
        ("label_empty", b'{"label": ""}'), ("label_list", b'{"label": ["churn"]}'),
        ("label_unknown", b'{"label": "height"}'), ("label_continuous", b'{"label": "income"}'),
        ("missing_unknown", b'{"missing": "fill"}'), ("missing_list", b'{"missing": ["drop"]}'),
        ("extra_key", b'{"extra": 1}'), ("deep", b"[" * 50000 + b"]" * 50000), ("huge_number", b'{"label": 1e400}'),
        ("utf16", SCHEMA.decode().encode("utf-16")), ("nul", SCHEMA.replace(b"age", b"a\x00ge")),
        ("text_as_integer", b'{"columns": {"city": "integer"}}'), ("not_boolean", b'{"columns": {"age": "boolean"}}'),
        ("all_ignored", b'{"columns": {"age": "ignore", "income": "ignore", "city": "ignore", "member": "ignore", '
                        b'"churn": "ignore"}}'),
        ("label_ignored", b'{"columns": {"churn": "ignore"}, "label": "churn"}'),
        ("long_digits", b'{"label": ' + b"9" * 5000 + b"}"),
        *((f"mutated_{index:02d}", content) for index, content in enumerate(mutations(SCHEMA, 12, rng))),
    ]


def npz_contents(rng):
    images = np.zeros((4, 28, 28), np.uint8)
    whole = npz_bytes(x=images, y=np.arange(4))
    return [
        ("empty", b""), ("text", b"x,y\n1,2\n"), ("random_bytes", rng.randbytes(300)),
        ("npy_not_npz", _npy(images)),
        ("no_x", npz_bytes(images=images)), ("objects", npz_bytes(x=np.array([{}, None], dtype=object))),
        ("scalar", npz_bytes(x=np.float32(3))), ("one_dimensional", npz_bytes(x=np.arange(5.0))),
        ("five_dimensional", npz_bytes(x=np.zeros((2, 3, 3, 3, 1)))), ("nan", npz_bytes(x=np.array([[1.0, np.nan]]))),
        ("inf", npz_bytes(x=np.array([[1.0, np.inf]] * 3))), ("strings", npz_bytes(x=np.array([["a", "b"]] * 3))),
        ("booleans", npz_bytes(x=np.ones((3, 2), bool))), ("complex", npz_bytes(x=np.ones((3, 2), complex))),
        ("structured", npz_bytes(x=np.zeros(3, dtype=[("a", "f4"), ("b", "i4")]))),
        ("zero_width", npz_bytes(x=np.zeros((3, 0)))), ("no_examples", npz_bytes(x=np.zeros((0, 5)))),
        ("two_channels", npz_bytes(x=np.zeros((3, 8, 8, 2), np.uint8))),
        ("four_channels", npz_bytes(x=np.zeros((3, 8, 8, 4), np.uint8))),
        ("float_labels", npz_bytes(x=images, y=np.arange(4.0))),
        ("negative_labels", npz_bytes(x=images, y=-np.arange(4))),
        ("labels_2d", npz_bytes(x=images, y=np.zeros((4, 2), int))),
        ("labels_huge", npz_bytes(x=images, y=np.full(4, 2**62))),
        ("labels_strings", npz_bytes(x=images, y=np.array(list("abcd")))),
        ("labels_objects", npz_bytes(x=images, y=np.array([None, 1, 2, 3], dtype=object))),
        ("float64_huge", npz_bytes(x=np.array([[1e300, 2.0], [3.0, 4.0]]))),
        ("uint64_images", npz_bytes(x=np.full((3, 28, 28), 2**63, np.uint64))),
        ("int64_images", npz_bytes(x=np.arange(3 * 8 * 8, dtype=np.int64).reshape(3, 8, 8))),
        ("float16_images", npz_bytes(x=np.full((3, 8, 8), 0.5, np.float16))),
        ("constant_float_images", npz_bytes(x=np.full((3, 8, 8), 300.0, np.float32))),
        ("one_pixel_images", npz_bytes(x=np.zeros((3, 1, 1), np.uint8))),
        *((f"truncated_{index}", whole[:length]) for index, length in enumerate((30, 100, 400, len(whole) - 10))),
        *((f"mutated_{index:02d}", content) for index, content in enumerate(mutations(whole, 8, rng))
          if index % 4 != 3),
    ]


def _npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def image_contents(rng):
    """Folders as {relative path: bytes} (a path ending in / is an empty folder)."""
    good = png((8, 8, 1))
    jpeg = tf.io.encode_jpeg(np.full((8, 8, 3), 9, np.uint8)).numpy()
    return [
        ("text_as_png", {"a.png": b"not an image at all\n"}), ("empty_png", {"a.png": b""}),
        ("truncated_png", {"a.png": good[:40], "b.png": good}),
        ("png_header_then_noise", {"a.png": good[:16] + rng.randbytes(64)}),
        ("truncated_jpeg", {"a.jpg": jpeg[: len(jpeg) // 2]}),
        ("bmp_header_only", {"a.bmp": b"BM" + rng.randbytes(20)}),
        ("gif_garbage", {"a.gif": b"GIF89a" + rng.randbytes(30)}), ("png_named_jpg", {"a.jpg": good}),
        ("sixteen_bit", {"a.png": png((8, 8, 1), np.uint16)}), ("rgba", {"a.png": png((8, 8, 4))}),
        ("gray_alpha", {"a.png": png((8, 8, 2))}), ("mixed_channels", {"a.png": good, "b.png": png((8, 8, 3))}),
        ("mixed_sizes", {"a.png": good, "b.png": png((9, 8, 1))}),
        ("top_and_classes", {"a.png": good, "cats/b.png": good}),
        ("a_class_without_images", {"cats/a.png": good, "dogs/": None}),
        ("folder_named_png", {"a.png/": None}), ("only_text_files", {"notes.txt": b"hello"}),
        ("hidden_class", {".cache/a.png": good}),
        *((f"mutated_{index:02d}", {"a.png": content, "b.png": good})
          for index, content in enumerate(mutations(good, 6, rng)) if index % 4 != 3),
    ]


def tf_config_contents(rng):
    base = ('{"cluster": {"worker": ["localhost:1", "localhost:1"], "ps": ["h:3"]}, '
            '"task": {"type": "worker", "index": 7}}')
    return [
        ("empty_object", "{}"), ("not_json", "{cluster"), ("list", "[1, 2]"), ("number", "3"), ("null", "null"),
        ("no_cluster", '{"task": {"type": "worker", "index": 0}}'),
        ("cluster_list", '{"cluster": ["localhost:1"], "task": {"type": "worker", "index": 0}}'),
        ("no_task", '{"cluster": {"worker": ["localhost:1"]}}'),
        ("index_out_of_range", '{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": 1}}'),
        ("negative_index", '{"cluster": {"worker": ["localhost:1"]}, "task": {"type": "worker", "index": -1}}'),
        ("float_index", '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 0.5}}'),
        ("string_index", '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": "x"}}'),
        ("bool_index", '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": true}}'),
        ("type_list", '{"cluster": {"worker": ["a:1"]}, "task": {"type": ["worker"], "index": 0}}'),
        ("type_unknown", '{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}'),
        ("ps_job", '{"cluster": {"worker": ["a:1"], "ps": ["b:2"]}, "task": {"type": "worker", "index": 0}}'),
        ("no_port", '{"cluster": {"worker": ["localhost"]}, "task": {"type": "worker", "index": 0}}'),
        ("port_out_of_range", '{"cluster": {"worker": ["a:99999"]}, "task": {"type": "worker", "index": 0}}'),
        ("address_number", '{"cluster": {"worker": [1]}, "task": {"type": "worker", "index": 0}}'),
        ("no_workers", '{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}'),
        ("two_chiefs",
         '{"cluster": {"chief": ["a:1", "b:2"], "worker": ["c:3"]}, "task": {"type": "chief", "index": 0}}'),
        ("same_address_twice", base.replace('"ps": ["h:3"]', '"chief": ["h:3"]').replace("7", "0")),
        ("deep", "[" * 50000 + "]" * 50000), ("huge_number_index", base.replace("7", "1e400")),
        ("long_digits_index", base.replace("7", "9" * 5000)),
        *((f"truncated_{index}", base[:length])
          for index, length in enumerate(sorted(rng.sample(range(1, len(base)), 5)))),
        # An environment variable holds no NUL character.
        *((f"mutated_{index:02d}", content.decode("utf-8", "replace").replace("\x00", "?"))
          for index, content in enumerate(mutations(base.encode(), 8, rng)) if index % 4 != 3),
    ]


def fuzz_cases():
    makers = {"csv": csv_contents, "schema": schema_contents, "npz": npz_contents, "images": image_contents,
              "tf_config": tf_config_contents}
    cases = []
    for offset, (parser, make) in enumerate(makers.items()):
        rng = random.Random(FUZZ_SEED + offset)
        cases += [pytest.param(parser, content, id=f"{parser}-{name}") for name, content in make(rng)]
    return cases


FUZZ = fuzz_cases()


def fuzz_flags(parser: str, content, folder, monkeypatch) -> list[str]:
    """Writes `content` where the parser reads it; the train flags that read it."""
    if parser == "csv":
        (folder / "table.csv").write_bytes(content)
        return ["--model=gan", f"--dataset=csv:{folder / 'table.csv'}", "--image_size=8"]
    if parser == "schema":
        (folder / "table.csv").write_bytes(CSV_TABLE)
        (folder / "schema.json").write_bytes(content)
        return ["--model=gan", f"--dataset=csv:{folder / 'table.csv'}", f"--schema={folder / 'schema.json'}",
                "--image_size=8"]
    if parser == "npz":
        (folder / "data.npz").write_bytes(content)
        return ["--model=dcgan", f"--dataset=npz:{folder / 'data.npz'}", "--image_size=5"]
    if parser == "images":
        for name, data in content.items():
            path = folder / "images" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.mkdir() if data is None else path.write_bytes(data)
        return ["--model=dcgan", f"--dataset=images:{folder / 'images'}", "--image_size=5"]
    monkeypatch.setenv("TF_CONFIG", content)
    return ["--model=gan", "--dataset=ring", "--strategy=multi_worker"]


@pytest.mark.parametrize("parser, content", FUZZ)
def test_any_content_of_a_user_file_is_one_line(tmp_path, monkeypatch, parser, content):
    flags = fuzz_flags(parser, content, tmp_path, monkeypatch)
    code, _, err = run_tool(train.main, *flags, f"--model_dir={tmp_path / 'run'}", *TINY)
    lines = err.strip().splitlines()
    assert code in (1, 2), err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def test_the_fuzz_covers_every_parser():
    counts = {parser: sum(case.values[0] == parser for case in FUZZ) for parser in ("csv", "schema", "npz", "images",
                                                                                   "tf_config")}
    assert all(count >= 20 for count in counts.values()), counts
