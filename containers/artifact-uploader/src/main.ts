import { main } from "@buildpod/runtime";
import { program } from "./program.ts";

main(program);
