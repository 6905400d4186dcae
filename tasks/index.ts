// Shoal's Hardhat tasks, one file per group. Loaded by hardhat.config.ts: keep these imports light
// (heavy clients are imported inside the actions).
import "./app";
import "./device";
import "./placement";
import "./resources";
import { reportTaskErrorsPlainly } from "./lib/cli-errors";

reportTaskErrorsPlainly(["app:", "device:", "placement:", "resources:"]);
