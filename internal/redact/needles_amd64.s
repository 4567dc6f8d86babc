//go:build amd64 && !purego

#include "textflag.h"

// func filterAVX2(b []byte) (mask uint32, at int)
TEXT ·filterAVX2(SB), NOSPLIT, $0-40
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), CX
	XORQ DI, DI
	SUBQ $43, CX // the last offset whose 43 bytes are in b
	MOVL $0x53, AX // 'S'
	MOVQ AX, X8
	VPBROADCASTB X8, Y8
	MOVL $0x74, AX // 't'
	MOVQ AX, X9
	VPBROADCASTB X9, Y9
	MOVL $0x54, AX // 'T'
	MOVQ AX, X10
	VPBROADCASTB X10, Y10

loop:
	CMPQ DI, CX
	JGT done
	VMOVDQU (SI)(DI*1), Y0
	VMOVDQU 5(SI)(DI*1), Y1
	VMOVDQU 11(SI)(DI*1), Y2
	VPCMPEQB Y8, Y0, Y3
	VPCMPEQB Y9, Y1, Y4
	VPAND Y4, Y3, Y3
	VPCMPEQB Y10, Y0, Y5
	VPCMPEQB Y9, Y2, Y6
	VPAND Y6, Y5, Y5
	VPOR Y5, Y3, Y3
	VPMOVMSKB Y3, AX
	TESTL AX, AX
	JNZ found
	ADDQ $32, DI
	JMP loop

found:
	VZEROUPPER
	MOVL AX, mask+24(FP)
	MOVQ DI, at+32(FP)
	RET

done:
	VZEROUPPER
	MOVL $0, mask+24(FP)
	MOVQ DI, at+32(FP)
	RET
