package main

import "github.com/spf13/cobra"

func newBatch() *cobra.Command { return &cobra.Command{Use: "batch", Hidden: true} }
