package main

func runCorefile(g globals, args []string) int { return exitError }
