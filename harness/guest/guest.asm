; guest.asm: a 512-byte BIOS boot sector that repaints its key region on
; every key, and, when asked, keeps the rest of the screen busy by itself,
; so a SPICE client sees one burst of draws per key press in a region of
; its own, apart from the activity.
;
; Build: nasm -f bin -o harness/guest/guest.img harness/guest/guest.asm
; (`make guest`). The Go package in this directory embeds guest.img and
; exports the addresses and offsets below; keep them in step with guest.go.
;
; The screen (80x25 text, 9x16 font: 720x400 pixels):
;   rows 0-2   the key region (KEYROWS): on every key read with int 16h it
;              - adds one to a 32-bit key counter at physical 0x7E00 (COUNTER),
;              - stores the BIOS key word (AL = ASCII, AH = scancode) at
;                0x7E04 (LASTKEY),
;              - fills rows 0-2 with the next background colour and writes
;                ">> ", the key (or '?' when not printable), its scancode in
;                hex and the counter in decimal on row 0.
;              The idle guest fills the whole screen instead, as the guest
;              always has (23 strips of 32x400, each crossing rows 0-2), so
;              its figures stay what they were.
;   row 3      a separator that never changes, so that QEMU never merges a
;              key's damage and the activity's into one rectangle.
;   rows 4-24  the activity area, chosen by the byte at offset 509 (ACTIVITY,
;              patched by guest.ImageFor; 0 in the committed image):
;              0 idle    never changes: no key, no draw (the guest of old);
;              1 typing  one character cell changes 4 times a second;
;              2 scroll  the area scrolls up one line 10 times a second
;                        (each line has its own background colour);
;              3 video   every cell of the area changes glyph and background
;                        100 times a second (faster than QEMU's ~30 ms
;                        display refresh, so every refresh carries the
;                        whole area).
; A busy guest reprograms the PIT to 100 Hz and sleeps (hlt) between
; ticks: it costs the host little, and keys are read between ticks.
; The cursor is hidden and no attribute blinks, so nothing else changes.

bits 16
org 0x7c00

COUNTER equ 0x7e00
LASTKEY equ 0x7e04
LASTTICK equ 0x7e08             ; BIOS tick of the last activity step
FRAME   equ 0x7e0a              ; activity steps so far
TEXTSEG equ 0xb800
TICKS   equ 0x046c              ; BIOS tick counter (BDA)
KEYROWS equ 3
AREA    equ (KEYROWS+1)*160     ; byte offset of the activity area
AREACELLS equ (25-KEYROWS-1)*80
PITDIV  equ 11932               ; 1193182 Hz / 11932 = 100 Hz

start:
    cli
    xor ax, ax
    mov ds, ax
    mov ss, ax
    mov sp, 0x7c00
    sti
    cld
    mov ax, 0x0003              ; 80x25 colour text mode
    int 0x10
    mov ah, 0x01                ; hide the cursor (CH bit 5): nothing blinks
    mov cx, 0x2000
    int 0x10
    xor eax, eax
    mov [COUNTER], eax
    mov [LASTKEY], eax
    mov [LASTTICK], eax
    push word TEXTSEG           ; the whole screen grey on black
    pop es
    xor di, di
    mov ax, 0x0720
    mov cx, 80*25
    rep stosw
    mov di, KEYROWS*160         ; the separator: a row of '-'
    mov al, '-'
    mov cl, 80
    rep stosw
    mov byte [attr], 0x1f       ; white on blue
    call paint
    cmp byte [activity], 0
    je idle
    mov al, 0x36                ; PIT channel 0, mode 3, lo/hi: 100 Hz
    out 0x43, al
    mov ax, PITDIV
    out 0x40, al
    mov al, ah
    out 0x40, al

; busy: sleep until an interrupt, take a key if one came, step the
; activity when its period has passed.
busy:
    hlt
    mov ah, 0x11                ; a key waiting? (ZF set when none)
    int 0x16
    jz .step
    call key
.step:
    mov bx, [activity]          ; BL = activity, 1..3
    xor bh, bh
    mov al, [period+bx-1]
    xor ah, ah
    mov dx, [TICKS]
    mov cx, dx
    sub cx, [LASTTICK]
    cmp cx, ax
    jb busy
    mov [LASTTICK], dx
    inc word [FRAME]
    push word TEXTSEG
    pop es
    dec bx
    jz typing
    dec bx
    jz scroll
    ; video: every cell of the area, character and colour, from the frame.
    ; The background moves on by one colour a frame in every cell, so
    ; every pixel line of the area changes: QEMU sends one tall rectangle
    ; per 32-pixel column, not one per run of changed glyph lines.
    mov di, AREA
    mov ax, [FRAME]
    imul ax, ax, 0x1001
    mov cx, AREACELLS
.cell:
    and ah, 0x7f                ; never the blink bit
    stosw
    add ax, 0x1305              ; the next cell differs in glyph and colour
    loop .cell
    jmp busy

; typing: one cell on row 24 gets the next letter, walking along 40 columns.
typing:
    mov ax, [FRAME]
    xor dx, dx
    mov bx, 40
    div bx                      ; AX = pass, DX = column
    mov di, dx
    shl di, 1
    add di, 24*160
    xor dx, dx
    mov bx, 26
    div bx                      ; DX = pass mod 26
    mov al, dl
    add al, 'a'
    mov ah, 0x07
    stosw
    jmp busy

; scroll: rows 5-24 move up one row, row 24 gets a new line.
scroll:
    push ds
    push es
    pop ds
    mov si, AREA+160
    mov di, AREA
    mov cx, AREACELLS-80
    rep movsw
    pop ds
    mov ax, [FRAME]             ; DI is now row 24
    mov bl, al                  ; each line's background follows the
    and bl, 0x07                ; frame, so no two adjacent lines share one
    shl bl, 4                   ; and a scroll changes every pixel line
    or bl, 0x0f
    mov cl, 80
.char:
    push ax
    and al, 0x3f                ; printable: 0x20..0x5f
    add al, 0x20
    mov ah, bl
    stosw
    pop ax
    add al, 7
    loop .char
    jmp busy

idle:
    mov ah, 0x10                ; extended read, blocking
    int 0x16
    call take
    jmp idle

; key reads the waiting key and handles it.
key:
    mov ah, 0x10                ; extended read: keeps the 0xE0 of grey keys
    int 0x16                    ; AH = scancode, AL = ASCII
; take counts the key in AX and repaints the key region.
take:
    mov [LASTKEY], ax
    inc dword [COUNTER]
    mov al, [attr]
    add al, 0x10                ; next background colour
    and al, 0x7f                ; background 0..7: never the blink bit
    mov [attr], al
    ; fall through

; paint fills the key region with attr and writes the status line.
paint:
    push es
    mov ax, TEXTSEG
    mov es, ax
    xor di, di
    mov ah, [attr]
    mov al, ' '
    mov cx, 80*KEYROWS
    cmp byte [activity], 0      ; idle: the whole screen, as it always did
    jne .fill
    mov cx, 80*25
.fill:
    rep stosw
    xor di, di
    mov al, '>'
    stosw
    stosw
    mov al, ' '
    stosw
    mov al, [LASTKEY]           ; the key's ASCII, '?' when not printable
    cmp al, 0x20
    jb .unprintable
    cmp al, 0x7e
    jbe .printable
.unprintable:
    mov al, '?'
.printable:
    stosw
    mov al, ' '
    stosw
    mov bl, [LASTKEY+1]         ; scancode as two hex digits
    mov cl, 4
    call hexdigit
    mov cl, 0
    call hexdigit
    mov al, ' '
    stosw
    mov eax, [COUNTER]          ; counter in decimal
    mov ebx, 10
    xor cx, cx
.divide:
    xor edx, edx
    div ebx
    push dx
    inc cx
    test eax, eax
    jnz .divide
    mov ah, [attr]
.digit:
    pop dx
    mov al, dl
    add al, '0'
    stosw
    loop .digit
    pop es
    ret

; hexdigit writes the nibble of BL selected by shifting right CL bits.
hexdigit:
    mov al, bl
    shr al, cl
    and al, 0x0f
    add al, '0'
    cmp al, '9'
    jbe .out
    add al, 'A' - '9' - 1
.out:
    mov ah, [attr]
    stosw
    ret

attr:   db 0
period: db 25, 10, 1            ; ticks between steps: typing, scroll, video

    times 509 - ($ - $$) db 0
activity: db 0                  ; offset 509: 0 idle, 1 typing, 2 scroll, 3 video
    dw 0xaa55
